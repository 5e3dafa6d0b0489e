"""Start the server: ``run_server(settings)``, and ``serve_command(section)`` for ``medtune run``'s last stage."""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path
from typing import Any

from ..config.sections.security import SecuritySection
from ..config.sections.serve import ServeSection
from .settings import ServeSettings, load_settings

_FLAG_FIELDS = ("backend", "endpoint", "served_name", "host", "port", "slots", "queue_size", "context_length",
                "max_tokens_ceiling", "confidence_threshold", "log_file")
# security fields with a `medtune serve` flag of their own (the others: -c CONFIG or MEDTUNE_SECURITY__*)
SECURITY_FLAG_FIELDS = ("tls_cert", "tls_key", "allow_plaintext", "keys_file", "audit_dir", "phi_policy")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def serve_command(section: ServeSection, model: str | None = None) -> list[str]:
    """The exact ``medtune serve`` argv that serves ``model`` (default: the section's) with the section's settings.

    >>> serve_command(ServeSection(port=9000), "runs/x/export/medtune-x-q4_k_m.gguf")
    ['medtune', 'serve', 'runs/x/export/medtune-x-q4_k_m.gguf', '--port', '9000']
    >>> serve_command(ServeSection(security={"phi_policy": "block", "allow_plaintext": True}), "m.gguf")[3:]
    ['--allow-plaintext', '--phi-policy', 'block']
    """
    target = model or section.model
    if not target:
        raise ValueError("serve_command: no model (give one, or set serve.model)")
    argv = ["medtune", "serve", str(target)]
    for values, defaults, names in ((section, ServeSection(), _FLAG_FIELDS),
                                    (section.security, SecuritySection(), SECURITY_FLAG_FIELDS)):
        for name in names:
            value = getattr(values, name)
            if value is None or value == getattr(defaults, name):
                continue
            flag = f"--{name.replace('_', '-')}"
            argv += [flag] if value is True else [flag, str(value)]
    return argv


def serve_command_line(section: ServeSection, model: str | None = None) -> str:
    return shlex.join(serve_command(section, model))


def configure_logging(settings: ServeSettings) -> list[logging.Handler]:
    """Console and (``log_file``) file handlers on the root logger; every root handler gets the PHI filter.

    Returns the handlers added (a caller embedding the server removes them when done).
    """
    from ..security.phi.detector import default_detector
    from ..security.phi.policy import PhiLogFilter

    added: list[logging.Handler] = [logging.StreamHandler()]
    if settings.log_file:
        path = Path(settings.log_file).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))  # created private; never world-readable
        added.append(logging.FileHandler(path, encoding="utf-8"))
    root = logging.getLogger()
    phi_filter = PhiLogFilter(default_detector(settings.security.phi_presidio))
    for handler in added:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    for handler in root.handlers:
        if not any(isinstance(f, PhiLogFilter) for f in handler.filters):
            handler.addFilter(phi_filter)
    root.setLevel(settings.log_level.upper())
    return added


def uvicorn_options(settings: ServeSettings) -> dict[str, Any]:
    """uvicorn's arguments: bind, TLS files, graceful shutdown; its loggers go through the root handlers.

    ``proxy_headers`` is on only for ``security.trusted_proxies``: uvicorn would otherwise take the client
    address from X-Forwarded-For whenever the peer is in FORWARDED_ALLOW_IPS (127.0.0.1 by default), and
    any local client could pick the address the auth-failure limiter counts. Without trusted proxies
    the address is the TCP peer (behind an undeclared proxy every client is one address, throttled together).
    """
    sec = settings.security
    tls = {"ssl_certfile": str(Path(sec.tls_cert).expanduser()), "ssl_keyfile": str(Path(sec.tls_key).expanduser())} \
        if sec.tls_cert and sec.tls_key else {}
    return {"host": settings.host, "port": settings.port, "log_level": settings.log_level, "log_config": None,
            "timeout_graceful_shutdown": settings.shutdown_timeout_s, "access_log": False,
            "proxy_headers": bool(sec.trusted_proxies), "forwarded_allow_ips": ",".join(sec.trusted_proxies) or None, **tls}


def run_server(settings: ServeSettings | ServeSection, **uvicorn_overrides: Any) -> None:
    """Check the transport, open the key store and the audit log, load the model, serve until SIGINT/SIGTERM.

    Every refusal comes before uvicorn starts, as a plain exception (``SecurityError``: a non-loopback
    bind without TLS, a log that does not verify; ``BackendError``/``ModelIntegrityError``: a model
    that cannot load or differs from its export manifest). uvicorn stops accepting connections on
    the signal, waits up to ``shutdown_timeout_s`` for the requests in flight, then the app's
    shutdown cancels what is left, stops the engine and signs the audit log's last checkpoint.
    """
    import uvicorn

    from ..security.gate import SecurityGate
    from .app import create_app
    from .backends import build_backend

    if not isinstance(settings, ServeSettings):
        settings = load_settings(settings)
    configure_logging(settings)
    gate = SecurityGate.from_settings(settings.security, host=settings.host)  # before the model: refuse fast
    try:
        backend, identity = build_backend(settings)  # before uvicorn: a model that cannot load is a plain error
    except BaseException:
        gate.close()
        raise
    app = create_app(settings, backend=backend, identity=identity, gate=gate)
    uvicorn.run(app, **{**uvicorn_options(settings), **uvicorn_overrides})
