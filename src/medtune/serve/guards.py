"""Every route is registered on a router made here, so none can skip the request path's checks.

The request path (docs/design.md, serving): TLS -> auth -> limits -> PHI policy -> queue ->
backend -> audit -> response. The checks that come before the gateway (auth, limits, and
whatever else a deployment adds) are *guards*: ``async def guard(request, ctx)`` functions in
``app.state.guards``, run in order by :func:`run_guards`, which :func:`guarded_router` attaches to
every route as a dependency. A guard raises :class:`medtune.serve.errors.APIError` to refuse.

Routes outside the guards are only those in :data:`PUBLIC_PATHS` (liveness and the static
page), and :func:`public_router` refuses to register any other path. ``tests/unit/serve``
walks ``app.routes`` to prove both rules, so a new route fails closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request

from .context import RequestContext
from .errors import APIError

Guard = Callable[[Request, RequestContext], Awaitable[None]]

# Reachable without any guard: liveness, the web page's static files (no data in them), the API schema.
PUBLIC_PATHS = frozenset({"/health", "/", "/static/{name}", "/openapi.json"})


async def run_guards(request: Request) -> None:
    """The guard chain, in the app's order; attached to every guarded route."""
    ctx: RequestContext = request.state.ctx
    route = request.scope.get("route")
    ctx.route = getattr(route, "path", ctx.route)
    for guard in request.app.state.guards:
        await guard(request, ctx)


def guarded_router(**kwargs: Any) -> APIRouter:
    """An APIRouter whose every route runs :func:`run_guards` first."""
    return APIRouter(dependencies=[Depends(run_guards)], **kwargs)


class _PublicRouter(APIRouter):
    def add_api_route(self, path: str, *args: Any, **kwargs: Any) -> None:
        if self.prefix + path not in PUBLIC_PATHS:
            raise ValueError(f"{path} is not in PUBLIC_PATHS: register it on guarded_router()")
        super().add_api_route(path, *args, **kwargs)


def public_router() -> APIRouter:
    """A router for the allowlisted public paths only (anything else raises at registration)."""
    return _PublicRouter()


async def refuse_while_draining(request: Request, ctx: RequestContext) -> None:
    """A stopping server takes no new work: 503 with Retry-After (the client retries elsewhere or later)."""
    gateway = request.app.state.gateway
    if gateway.draining:
        raise APIError(503, "the server is shutting down", code="shutting_down",
                       headers={"Retry-After": str(gateway.retry_after_s)})


def default_guards() -> list[Guard]:
    """The guards of this build, in request-path order (#14 inserts auth and limits before the last)."""
    return [refuse_while_draining]
