"""`medtune serve MODEL | -c CONFIG`: the OpenAI-compatible server (thin: flags -> settings -> run_server)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config.sections.serve import ServeSection
from .common import fail
from .options import config_option, field_options, with_field_options

# flags of `medtune serve`: help and shown default come from each Field (config/sections/serve.py, security.py)
SERVE_FLAGS = ("serve.backend", "serve.endpoint", "serve.served_name", "serve.host", "serve.port", "serve.slots",
               "serve.queue_size", "serve.context_length", "serve.threads", "serve.device", "serve.max_tokens_ceiling",
               "serve.confidence_threshold", "serve.log_level", "serve.log_file", "serve.security.tls_cert",
               "serve.security.tls_key", "serve.security.allow_plaintext", "serve.security.keys_file",
               "serve.security.audit_dir", "serve.security.phi_policy")


@with_field_options(*SERVE_FLAGS)
def serve(model: str = typer.Argument(None, help=ServeSection.model_fields["model"].description),
          config: Path = config_option(), **flags) -> None:
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
        settings = load_settings(section, {"model": model, **given_flags(flags)})
    except ConfigError as e:
        fail(str(e))
    if not settings.model:
        fail("nothing to serve: give MODEL (a .gguf, a model folder, a run folder or a preset), or serve.model in -c CONFIG")
    try:
        run_server(settings)
    except (BackendError, ModelLoadError, ImportError, SecurityError) as e:
        fail(str(e))


def given_flags(flags: dict) -> dict:
    """{"port": 9000, "security": {"phi_policy": "block"}} from the flags that were given."""
    out: dict = {}
    for name, opt in field_options(serve).items():
        if flags.get(name) is not None:
            *parents, leaf = opt.config_path.split(".")[1:]
            node = out
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = flags[name]
    return out


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
