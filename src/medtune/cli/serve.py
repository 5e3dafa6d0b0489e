"""`medtune serve MODEL | -c CONFIG`: the OpenAI-compatible server (thin: flags -> settings -> run_server)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config.sections.serve import ServeSection
from .common import fail

F = ServeSection.model_fields


def _help(name: str) -> str:
    return F[name].description or ""


def serve(
    model: str = typer.Argument(None, help=_help("model")),
    config: Path = typer.Option(None, "-c", "--config", help="Run config YAML; its `serve` section is read."),
    backend: str = typer.Option(None, help=_help("backend") + f" [default: {F['backend'].default}]"),
    endpoint: str = typer.Option(None, help=_help("endpoint")),
    served_name: str = typer.Option(None, help=_help("served_name")),
    host: str = typer.Option(None, help=_help("host") + f" [default: {F['host'].default}]"),
    port: int = typer.Option(None, help=_help("port") + f" [default: {F['port'].default}]"),
    slots: int = typer.Option(None, help=_help("slots") + f" [default: {F['slots'].default}]"),
    queue_size: int = typer.Option(None, help=_help("queue_size") + f" [default: {F['queue_size'].default}]"),
    context_length: int = typer.Option(None, help=_help("context_length")),
    threads: int = typer.Option(None, help=_help("threads")),
    device: str = typer.Option(None, help=_help("device")),
    max_tokens_ceiling: int = typer.Option(None, help=_help("max_tokens_ceiling") + f" [default: {F['max_tokens_ceiling'].default}]"),
    confidence_threshold: float = typer.Option(None, help=_help("confidence_threshold") + f" [default: {F['confidence_threshold'].default}]"),
    log_level: str = typer.Option(None, help=_help("log_level")),
) -> None:
    """Serve a model: OpenAI-compatible API, /v1/analyze_case, metrics and the clinician page at /.

    Settings: flags > MEDTUNE_* environment variables (e.g. MEDTUNE_PORT) > the config's serve
    section > defaults. Binds 127.0.0.1 unless told otherwise. Research use only.
    """
    from ..config import ConfigError, load_config
    from ..models.source import ModelLoadError
    from ..serve import load_settings, run_server
    from ..serve.backends import BackendError

    try:
        section = load_config(config).serve if config else None
        settings = load_settings(section, {
            "model": model, "backend": backend, "endpoint": endpoint, "served_name": served_name, "host": host,
            "port": port, "slots": slots, "queue_size": queue_size, "context_length": context_length, "threads": threads,
            "device": device, "max_tokens_ceiling": max_tokens_ceiling, "confidence_threshold": confidence_threshold,
            "log_level": log_level})
    except ConfigError as e:
        fail(str(e))
    if not settings.model:
        fail("nothing to serve: give MODEL (a .gguf, a model folder, a run folder or a preset), or serve.model in -c CONFIG")
    try:
        run_server(settings)
    except (BackendError, ModelLoadError, ImportError) as e:
        fail(str(e))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
