"""``medtune serve``: an OpenAI-compatible server with structured case analysis and a clinician web page.

``create_app(settings)`` builds the FastAPI app; ``run_server(settings)`` runs it with uvicorn;
``serve_command(section)`` is the command line ``medtune run`` prints for its last stage.
FastAPI and uvicorn come with ``pip install 'medtune[serve]'``; importing this package needs neither.
"""

from __future__ import annotations

from typing import Any

from .run import serve_command, serve_command_line
from .settings import ServeSettings, load_settings

__all__ = ["ServeSettings", "create_app", "load_settings", "run_server", "serve_command", "serve_command_line"]


def create_app(settings: ServeSettings, **kwargs: Any) -> Any:
    from .app import create_app as _create_app

    return _create_app(settings, **kwargs)


def run_server(settings: Any, **uvicorn_options: Any) -> None:
    from .run import run_server as _run_server

    _run_server(settings, **uvicorn_options)
