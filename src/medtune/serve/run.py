"""Start the server: ``run_server(settings)``, and ``serve_command(section)`` for ``medtune run``'s last stage."""

from __future__ import annotations

import logging
import shlex
from typing import Any

from ..config.sections.serve import ServeSection
from .settings import ServeSettings, load_settings

_FLAG_FIELDS = ("backend", "endpoint", "served_name", "host", "port", "slots", "queue_size", "context_length",
                "max_tokens_ceiling", "confidence_threshold")


def serve_command(section: ServeSection, model: str | None = None) -> list[str]:
    """The exact ``medtune serve`` argv that serves ``model`` (default: the section's) with the section's settings.

    >>> serve_command(ServeSection(port=9000), "runs/x/export/medtune-x-q4_k_m.gguf")
    ['medtune', 'serve', 'runs/x/export/medtune-x-q4_k_m.gguf', '--port', '9000']
    """
    target = model or section.model
    if not target:
        raise ValueError("serve_command: no model (give one, or set serve.model)")
    argv = ["medtune", "serve", str(target)]
    defaults = ServeSection()
    for name in _FLAG_FIELDS:
        value = getattr(section, name)
        if value is not None and value != getattr(defaults, name):
            argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def serve_command_line(section: ServeSection, model: str | None = None) -> str:
    return shlex.join(serve_command(section, model))


def run_server(settings: ServeSettings | ServeSection, **uvicorn_options: Any) -> None:
    """Load the model and serve until SIGINT/SIGTERM (blocking).

    uvicorn stops accepting connections on the signal, waits up to ``shutdown_timeout_s`` for the
    requests in flight, then the app's shutdown cancels what is left and stops the engine.
    """
    import uvicorn

    from .app import create_app
    from .backends import build_backend

    if not isinstance(settings, ServeSettings):
        settings = load_settings(settings)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    backend, identity = build_backend(settings)  # before uvicorn: a model that cannot load is a plain error
    app = create_app(settings, backend=backend, identity=identity)
    options = {"host": settings.host, "port": settings.port, "log_level": settings.log_level,
               "timeout_graceful_shutdown": settings.shutdown_timeout_s, "access_log": False, **uvicorn_options}
    uvicorn.run(app, **options)
