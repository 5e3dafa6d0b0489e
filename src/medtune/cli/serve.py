"""`medtune serve MODEL | -c CONFIG`: the OpenAI-compatible server (thin: flags -> settings -> run_server)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config.sections.security import SecuritySection
from ..config.sections.serve import ServeSection
from .common import fail

F = ServeSection.model_fields
S = SecuritySection.model_fields


def _help(name: str) -> str:
    return F[name].description or ""


def _sec(name: str) -> str:
    return (S[name].description or "") + f" (security.{name})"


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
    log_file: str = typer.Option(None, help=_help("log_file")),
    tls_cert: str = typer.Option(None, help=_sec("tls_cert")),
    tls_key: str = typer.Option(None, help=_sec("tls_key")),
    allow_plaintext: bool = typer.Option(None, "--allow-plaintext", help=_sec("allow_plaintext"), show_default=False),
    keys_file: str = typer.Option(None, help=_sec("keys_file") + f" [default: {S['keys_file'].default}]"),
    audit_dir: str = typer.Option(None, help=_sec("audit_dir") + f" [default: {S['audit_dir'].default}]"),
    phi_policy: str = typer.Option(None, help=_sec("phi_policy") + f" [default: {S['phi_policy'].default}]"),
) -> None:
    """Serve a model: OpenAI-compatible API, /v1/analyze_case, metrics and the clinician page at /.

    Settings: flags > MEDTUNE_* environment variables (e.g. MEDTUNE_PORT, MEDTUNE_SECURITY__PHI_POLICY) >
    the config's serve section > defaults. Binds 127.0.0.1 unless told otherwise; any other address
    needs --tls-cert and --tls-key. Every route but /health and the page needs an API key
    (`medtune keys create`). Research use only.
    """
    from ..config import ConfigError, load_config
    from ..models.source import ModelLoadError
    from ..security import SecurityError
    from ..serve import load_settings, run_server
    from ..serve.backends import BackendError

    try:
        section = load_config(config).serve if config else None
        settings = load_settings(section, {
            "model": model, "backend": backend, "endpoint": endpoint, "served_name": served_name, "host": host,
            "port": port, "slots": slots, "queue_size": queue_size, "context_length": context_length, "threads": threads,
            "device": device, "max_tokens_ceiling": max_tokens_ceiling, "confidence_threshold": confidence_threshold,
            "log_level": log_level, "log_file": log_file,
            "security": {"tls_cert": tls_cert, "tls_key": tls_key, "allow_plaintext": allow_plaintext,
                         "keys_file": keys_file, "audit_dir": audit_dir, "phi_policy": phi_policy}})
    except ConfigError as e:
        fail(str(e))
    if not settings.model:
        fail("nothing to serve: give MODEL (a .gguf, a model folder, a run folder or a preset), or serve.model in -c CONFIG")
    try:
        run_server(settings)
    except (BackendError, ModelLoadError, ImportError, SecurityError) as e:
        fail(str(e))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
