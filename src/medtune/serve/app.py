"""``create_app(settings)``: the FastAPI application, with no module-level state.

Everything a request needs hangs off ``app.state``: ``settings``, ``gate`` (the security gate:
keys, limits, PHI policy, audit log; ``medtune.serve.secure`` wires it in), ``gateway`` (backend,
queue, model identity), ``metrics`` (its own Prometheus registry), ``guards`` (the checks every
guarded route runs, in request-path order), ``end_hooks`` (run with the finished request context
before its last byte is sent) and ``response_headers`` (added to every response). The model is
loaded in the lifespan's startup (the log names what is served and its sha256); shutdown stops
admitting, lets in-flight requests finish for ``shutdown_timeout_s``, cancels the rest, and closes
the audit log with a signed checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI

from .. import DISCLAIMER, __version__
from ..security.gate import SecurityGate
from . import secure
from .backends import Backend, build_backend
from .context import ContextMiddleware, RequestContext
from .errors import ErrorBoundary, install_error_handlers
from .gateway import Gateway
from .guards import default_guards
from .identity import ModelIdentity
from .metrics import Metrics
from .settings import ServeSettings

log = logging.getLogger("medtune.serve")


def create_app(settings: ServeSettings, *, backend: Backend | None = None, identity: ModelIdentity | None = None,
               gate: SecurityGate | None = None) -> FastAPI:
    """The server for ``settings``; ``backend``/``identity`` skip loading the model (tests, embedding in a process).

    ``gate`` defaults to one built from ``settings.security``: that refuses here (``SecurityError``)
    to bind a non-loopback address without TLS, and opens the key store and the audit log.
    """
    gate = gate or SecurityGate.from_settings(settings.security, host=settings.host,
                                              model_sha256=identity.sha256 if identity else None)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await _start(app, settings, backend, identity)
            yield
        finally:
            await _stop(app, settings)

    app = FastAPI(title="medtune serve", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None,  # served by a guarded route (routes_ops): the schema needs a key too
                  # FastAPI's native OpenTelemetry exports URLs, queries and exception messages off the host
                  # whenever a tracer or exporter is configured in the environment: never for this server
                  telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False,
                             "auto_configure": False},
                  description="OpenAI-compatible API and case analysis for medtune models. Every route but /health "
                  "and the web page needs `Authorization: Bearer <key>`. " + DISCLAIMER)
    app.state.settings = settings
    app.state.started = time.time()
    app.state.gateway = None
    app.state.guards = default_guards()
    app.state.metrics = Metrics(queue_depth=lambda: _gauge(app, "queue_depth"), in_flight=lambda: _gauge(app, "in_flight"))
    app.state.end_hooks = [app.state.metrics.observe, _access_log]
    app.state.response_headers = {"X-Content-Type-Options": "nosniff"}
    install_error_handlers(app)
    secure.install(app, gate)
    app.add_middleware(ErrorBoundary)  # inside the context: a 500 is audited and carries the response headers
    app.add_middleware(ContextMiddleware, end_hooks=app.state.end_hooks, response_headers=app.state.response_headers)
    from . import routes_admin, routes_case, routes_openai, routes_ops

    for router in (routes_openai.make_router(), routes_case.make_router(), *routes_admin.make_routers(),
                   *routes_ops.make_routers()):
        app.include_router(router)
    return app


async def _start(app: FastAPI, settings: ServeSettings, backend: Backend | None, identity: ModelIdentity | None) -> None:
    if backend is None:
        backend, identity = await asyncio.to_thread(build_backend, settings)
    identity = identity or ModelIdentity(backend.served_name, backend.name, "?", None)
    gateway = Gateway(backend, identity, settings)
    gateway.on_reject = lambda reason: app.state.metrics.rejected.labels(reason).inc()
    gate: SecurityGate = app.state.gate
    gate.model_sha256 = identity.sha256
    gateway.screen = lambda ctx, prompt: secure.screen_prompt(gate, ctx, prompt)
    app.state.gateway = gateway
    await backend.start()
    gateway.ready = True
    log.info("serving %s: backend %s, sha256 %s, run %s, source %s; %d slots, queue %d, context %d tokens, "
             "reasoning format %s. %s", identity.served_name, identity.backend, identity.sha256 or "unknown (upstream)",
             identity.run_id or "-", identity.source, backend.parallel, settings.queue_size, backend.context_length,
             backend.reasoning_format, DISCLAIMER)
    _log_security(gate)


def _log_security(gate: SecurityGate) -> None:
    active = sum(r.active for r in gate.keys.records())
    log.info("security: %d active API key(s) in %s; PHI policy %s; audit log %s; %s", active, gate.keys.path,
             gate.phi_policy, gate.audit.path, "HTTPS" if gate.tls else "plain HTTP")
    if not active:
        log.warning("no active API key: every request but /health and the page will get 401. Create one with "
                    "`medtune keys create --name NAME --role clinician --store %s`", gate.keys.path)


async def _stop(app: FastAPI, settings: ServeSettings) -> None:
    try:
        await _drain(app, settings)
    finally:
        app.state.gate.close()  # a final signed checkpoint, even if the model never loaded
    log.info("stopped")


async def _drain(app: FastAPI, settings: ServeSettings) -> None:
    gateway: Gateway | None = app.state.gateway
    if gateway is None:
        return
    gateway.draining = True
    deadline = time.monotonic() + settings.shutdown_timeout_s
    while gateway.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if gateway.in_flight:
        log.warning("shutdown: cancelling %d request(s) still running after %.0f s", gateway.in_flight,
                    settings.shutdown_timeout_s)
    await gateway.backend.close()


def _gauge(app: FastAPI, name: str) -> float:
    gateway = app.state.gateway
    return float(getattr(gateway, name)) if gateway is not None else 0.0


async def _access_log(ctx: RequestContext) -> None:
    """One line per request: ids, route, status, timings, token counts; never the texts (they may hold PHI)."""
    ttft = f"{ctx.first_token_s:.3f}s" if ctx.first_token_s is not None else "-"
    log.info("%s %s %s -> %s in %.3fs (ttft %s, tokens %d+%d)", ctx.request_id, ctx.method, ctx.route or "unmatched",
             ctx.status, ctx.latency_s or 0.0, ttft, ctx.prompt_tokens, ctx.completion_tokens)

