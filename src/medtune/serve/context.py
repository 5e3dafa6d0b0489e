"""The per-request context, and the middleware that opens it and runs the end-of-request hooks.

Every HTTP request gets a :class:`RequestContext` (``request.state.ctx``) before anything else
runs: request id, route, timings, token counts, the model digest, and the input and output
texts, which the gateway fills in one place (``Gateway.prepare`` / ``Gateway.run``). When the
response ends, the app's ``end_hooks`` run with the finished context **before the last byte is
sent** (a non-streaming response is held back whole until then): metrics and the access log
and the audit event (``medtune.serve.secure``); ``response_headers`` (the app's dict) are added to
every response (the security headers). A hook that raises fails the request closed: a 503 if
nothing was sent yet, an aborted stream otherwise. The hooks also run for requests that raised, and for
clients that went away (status 499).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import APIError, error_body, safe_method

log = logging.getLogger("medtune.serve")
CLIENT_CLOSED = 499  # nginx's code for a client that closed the connection before the response ended

EndHook = Callable[["RequestContext"], Awaitable[None]]


@dataclass
class RequestContext:
    request_id: str
    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)
    created: float = field(default_factory=time.time)
    route: str | None = None  # the route's path template (bounded label for metrics)
    status: int | None = None
    first_token_s: float | None = None  # seconds from the request's start to its first generated token
    latency_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_sha256: str | None = None
    inputs: list[str] = field(default_factory=list)  # texts the model was asked (after any PHI policy)
    outputs: list[str] = field(default_factory=list)  # texts it generated
    finish_reasons: list[str] = field(default_factory=list)
    principal: Any = None  # who asked: medtune.security.keys.Principal (key id, name, role), set before any route runs
    extra: dict[str, Any] = field(default_factory=dict)  # "phi": identifier types found -> count; "stream_error_status"

    @property
    def input_text(self) -> str:
        return "\n".join(self.inputs)

    @property
    def output_text(self) -> str:
        return "\n".join(self.outputs)

    def mark_first_token(self) -> None:
        if self.first_token_s is None:
            self.first_token_s = time.perf_counter() - self.started


def new_request_id() -> str:
    return "req-" + uuid.uuid4().hex[:24]


class ContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware: streaming responses and disconnects pass through untouched)."""

    def __init__(self, app: Any, end_hooks: list[EndHook], response_headers: dict[str, str]):
        self.app, self.end_hooks, self.response_headers = app, end_hooks, response_headers

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = RequestContext(new_request_id(), safe_method(scope["method"]), scope["path"])
        scope.setdefault("state", {})["ctx"] = ctx
        held: dict | None = None
        ended = False

        async def finish() -> None:
            nonlocal ended
            ended = True
            ctx.latency_s = time.perf_counter() - ctx.started
            route = scope.get("route")
            ctx.route = getattr(route, "path", None) or ctx.route
            for hook in self.end_hooks:
                await hook(ctx)

        async def send_wrapper(message: dict) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                ctx.status = message["status"]
                headers = message.setdefault("headers", [])
                headers.append((b"x-request-id", ctx.request_id.encode()))
                present = {k.lower() for k, _ in headers}
                headers += [(k.lower().encode(), v.encode()) for k, v in self.response_headers.items()
                            if k.lower().encode() not in present]
                held = message
                return
            if message["type"] == "http.response.body" and not message.get("more_body", False) and not ended:
                try:
                    await finish()
                except Exception:
                    log.exception("end-of-request hook failed (request %s)", ctx.request_id)
                    if held is None:
                        raise  # a stream already went out: abort it rather than end it normally
                    held, message = _failed_closed(ctx, self.response_headers)
            if held is not None:
                await send(held)
                held = None
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            if not ended:
                ctx.status = ctx.status if held is None and ctx.status else 500
                await self._finish_quietly(finish)
            raise
        if not ended:  # the client went away before the response ended: whether its start went out (a stream
            ctx.status = CLIENT_CLOSED  # under way) or was still held (no first token yet), it got no answer
            await self._finish_quietly(finish)

    @staticmethod
    async def _finish_quietly(finish: Callable[[], Awaitable[None]]) -> None:
        try:
            await finish()
        except Exception:
            log.exception("end-of-request hook failed")


def _failed_closed(ctx: RequestContext, response_headers: dict[str, str]) -> tuple[dict, dict]:
    import json

    # 503, not 500: the server is sound but cannot keep its record (e.g. the audit disk is full)
    err = APIError(503, "the request could not be recorded; it was not completed", code="record_failed")
    ctx.status = 503
    body = json.dumps(error_body(err.status, err.message, err.code)).encode()
    start = {"type": "http.response.start", "status": 503,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         (b"x-request-id", ctx.request_id.encode()),
                         *((k.lower().encode(), v.encode()) for k, v in response_headers.items())]}
    return start, {"type": "http.response.body", "body": body, "more_body": False}
