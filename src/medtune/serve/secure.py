"""The security layer in the server: one ``SecurityGate`` per app, called at each step of the request path.

Per request, in this order (docs/security.md, "The request path"):

1. :class:`AuthMiddleware`, before any route runs or any body is read: a declared body over the
   cap is 413; a public route (the allowlist, GET and HEAD) passes; any other request needs a valid
   API key (401 with ``WWW-Authenticate``; 429 after repeated failures from one address), which
   becomes ``ctx.principal``; then the route's class against the key's role (403, for a route
   that serves the request: an unknown path or method is the router's 404/405), and the key's
   rate limits (429 with ``Retry-After``: every request the role may make counts, one whose body
   will not parse too). The body is then read through Starlette's ``RequestBodyLimitMiddleware``,
   so a chunked body over the cap is a 413 too.
2. :func:`authorize_and_bound`, the first guard, on the parsed body: the role again (never trust
   one layer), then the request's bounds (422: ``n``, analyze_case's ``samples``, stop sequences...).
3. :func:`screen_prompt`, called by ``Gateway.prepare`` (the one place prompts become model
   input): the PHI policy; on ``block`` a 422 naming the identifier types, on ``redact`` the model
   sees placeholders. The types and counts go to the audit event in every mode.
4. The gateway: context length (400), ``max_tokens`` clamp, queue (503), backend, timeout (504).
5. :func:`audit_hook`, the first end hook: the audit event is written and fsynced before the
   response's last byte (so a failure is a 503, never an unrecorded answer); the generated tokens
   are then charged to the key's per-minute budget.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from fastapi import FastAPI, Request
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Match

from ..security import SecurityError
from ..security.gate import SecurityGate
from ..security.keys import Principal, RouteClass
from ..security.phi.policy import PhiBlocked
from .backends import Prompt
from .context import CLIENT_CLOSED, EndHook, RequestContext
from .errors import APIError, api_error, error_response
from .guards import effective_routes, route_class_of

UNMATCHED = "/{unmatched}"  # the audit's route for a path no route serves (the raw path could hold anything)


def install(app: FastAPI, gate: SecurityGate) -> None:
    """Put ``gate`` in every step of ``app``'s request path (call before the context middleware is added)."""
    app.state.gate = gate
    app.state.guards.insert(0, authorize_and_bound)
    app.state.end_hooks.insert(0, audit_hook(gate))
    app.state.response_headers.update(gate.headers)
    app.add_middleware(AuthMiddleware, gate=gate)  # innermost of the two: CORS answers preflights without a key
    if gate.cors:
        app.add_middleware(CORSMiddleware, **gate.cors)


def match_route(routes: list[BaseRoute], scope: dict) -> tuple[str | None, BaseRoute | None]:
    """(route template, the route that will serve the request) before routing: the same matching the router does.

    A path served for other methods only gives its template and no route (the router answers 405)."""
    template = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", None), route
        if match is Match.PARTIAL and template is None:  # the path exists, another method: 405 later
            template = getattr(route, "path", None)
    return template, None


class AuthMiddleware:
    """Pure ASGI: body cap, API key, role and rate before the route (no body of a keyless client, or of a
    request its role may not make, is ever read)."""

    def __init__(self, app: Any, gate: SecurityGate):
        self.app, self.gate = app, gate
        self.limited = RequestBodyLimitMiddleware(app, gate.caps.max_body_bytes)
        self._routes: list[BaseRoute] | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":  # no route speaks WebSocket: refuse before any handshake (HTTP 403)
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        if self._routes is None:  # the route table is complete once the app serves
            self._routes = effective_routes(scope["app"])
        ctx: RequestContext = scope["state"]["ctx"]
        ctx.route, route = match_route(self._routes, scope)
        headers = dict(scope.get("headers") or [])
        try:
            self.gate.check_body_size(_content_length(headers.get(b"content-length")))
            if route is None or route_class_of(route) is not RouteClass.PUBLIC:
                authorization = headers.get(b"authorization", b"").decode("latin-1") or None
                client = (scope.get("client") or ("unknown",))[0]  # the TCP peer: proxy headers are off (run.py)
                # a first use of a key costs one scrypt (tens of ms): off the event loop
                ctx.principal = await asyncio.to_thread(self.gate.authenticate, authorization, client)
                self._authorize_and_admit(ctx.principal, route)
        except SecurityError as e:
            await error_response(api_error(e))(scope, receive, send)
            return
        await self.limited(scope, receive, send)

    def _authorize_and_admit(self, principal: Principal, route: BaseRoute | None) -> None:
        """403 for a route the key's role may not use, then the key's rate limits (429), before the body is read:
        FastAPI parses a JSON body before any guard runs, so a guard would answer a malformed body with 400/422
        instead of 403, and the rate limiter would never count it. Without a route (404/405) only the rate applies."""
        if route is not None:
            self.gate.authorize(principal, route_class_of(route))
        self.gate.admit(principal)


def _content_length(value: bytes | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # the server rejects a malformed length itself


async def authorize_and_bound(request: Request, ctx: RequestContext) -> None:
    """The first guard: role against the route's class (403), then the parsed body's bounds (422).

    AuthMiddleware checked the key and the role and counted the request against the key's rate; the key and
    the role are checked again here (never trust one layer), the rate is not (a request counts once)."""
    gate: SecurityGate = request.app.state.gate
    if ctx.principal is None:  # AuthMiddleware lets no keyless request reach a guarded route; never trust one layer
        raise APIError(401, "missing, unknown or revoked API key (send Authorization: Bearer <key>)",
                       code="invalid_api_key", headers={"WWW-Authenticate": 'Bearer realm="medtune"'})
    try:
        gate.authorize(ctx.principal, route_class_of(request.scope.get("route")))
        gate.check_caps(await _json_object(request))
    except SecurityError as e:
        raise api_error(e) from None


async def _json_object(request: Request) -> dict[str, Any]:
    """The JSON body when it is an object (already read and cached by FastAPI), else {} (the route answers 400)."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return {}
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def screen_prompt(gate: SecurityGate, ctx: RequestContext, prompt: Prompt) -> Prompt:
    """The PHI policy on a prompt; the counts of what was found go on the context for the audit event."""
    found: dict[str, int] = ctx.extra.setdefault("phi", {})
    try:
        if prompt.messages is not None:
            screened = gate.screen(prompt.messages)
            result = dataclasses.replace(prompt, messages=screened.content)
        else:
            screened = gate.screen(prompt.text or "")
            result = dataclasses.replace(prompt, text=screened.content)
    except PhiBlocked as e:
        _count(found, e.counts)
        raise api_error(e) from None
    _count(found, screened.phi)
    return result


def _count(found: dict[str, int], counts: dict[str, int]) -> None:
    for kind, n in counts.items():
        found[kind] = found.get(kind, 0) + n


def audit_hook(gate: SecurityGate) -> EndHook:
    """The end hook that writes one audit event per request (refused ones too) and charges its tokens."""

    async def record_event(ctx: RequestContext) -> None:
        status = ctx.extra.get("stream_error_status", ctx.status) or CLIENT_CLOSED  # an error inside a 200 stream
        await gate.arecord(
            principal=ctx.principal, method=ctx.method,
            route=ctx.route or UNMATCHED, request_id=ctx.request_id, status=status, latency_s=ctx.latency_s or 0.0,
            input_text=ctx.input_text if ctx.inputs else None, output_text=ctx.output_text if ctx.outputs else None,
            phi=ctx.extra.get("phi"), prompt_tokens=ctx.prompt_tokens, completion_tokens=ctx.completion_tokens)
        gate.charge(ctx.principal, ctx.completion_tokens)

    return record_event
