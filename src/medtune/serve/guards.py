"""Every route is registered on a router made here, so none can skip the request path's checks.

The request path (docs/design.md, serving): TLS -> auth -> limits -> PHI policy -> queue ->
backend -> audit -> response. The API key, the key's role and its request rate are checked
before any route runs, by ``medtune.serve.secure.AuthMiddleware`` (so no body is read for a client
without a key, or for a request its role may not make); the checks that need the parsed body or
the app's state are *guards*: ``async def guard(request, ctx)`` functions in
``app.state.guards``, run in order by :func:`run_guards`, which :func:`guarded_router` attaches to
every route as a dependency. A guard raises :class:`medtune.serve.errors.APIError` to refuse.

Every route carries its access class (:class:`medtune.security.keys.RouteClass`) in its OpenAPI
extension ``x-medtune-route-class``: a guarded router stamps its class on each route it holds,
the role check reads it, and a route without one refuses every role. Routes outside the guards
are only those in :data:`PUBLIC_PATHS` (the one allowlist: liveness and the static page, GET and
HEAD), and :func:`public_router` refuses to register any other path. ``tests/unit/serve`` walks
``app.routes`` to prove these rules, so a new route fails closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.routing import BaseRoute

from ..security.keys import PUBLIC_PATHS, RouteClass
from .context import RequestContext
from .errors import APIError

__all__ = ["PUBLIC_PATHS", "ROUTE_CLASS_KEY", "Guard", "default_guards", "effective_routes", "guarded_router",
           "public_router", "route_class_of", "run_guards"]

Guard = Callable[[Request, RequestContext], Awaitable[None]]
ROUTE_CLASS_KEY = "x-medtune-route-class"


async def run_guards(request: Request) -> None:
    """The guard chain, in the app's order; attached to every guarded route."""
    ctx: RequestContext = request.state.ctx
    route = request.scope.get("route")
    ctx.route = getattr(route, "path", ctx.route)
    for guard in request.app.state.guards:
        await guard(request, ctx)


class _ClassedRouter(APIRouter):
    """A router whose every route carries ``route_class`` in its OpenAPI extension."""

    def __init__(self, route_class: RouteClass, **kwargs: Any):
        super().__init__(**kwargs)
        self.access_class = route_class

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["openapi_extra"] = {**(kwargs.get("openapi_extra") or {}), ROUTE_CLASS_KEY: self.access_class.value}
        super().add_api_route(path, endpoint, **kwargs)


def guarded_router(route_class: RouteClass, **kwargs: Any) -> APIRouter:
    """An APIRouter for one class of route (inference, audit, keys, ops); each route runs :func:`run_guards` first."""
    if route_class is RouteClass.PUBLIC:
        raise ValueError("public routes go on public_router() (the allowlist), not on a guarded router")
    return _ClassedRouter(route_class, dependencies=[Depends(run_guards)], **kwargs)


class _PublicRouter(_ClassedRouter):
    """Public routes; a GET is served for HEAD too, as Starlette's ``Route`` does and FastAPI's does not: load
    balancers and uptime monitors probe with HEAD, and without its own route a HEAD would be a keyed request
    (a 401, then a 405). The HEAD route is left out of the OpenAPI document (one operation per path)."""

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if self.prefix + path not in PUBLIC_PATHS:
            raise ValueError(f"{path} is not in PUBLIC_PATHS: register it on guarded_router()")
        super().add_api_route(path, endpoint, **kwargs)
        if "GET" in (kwargs.get("methods") or ["GET"]):  # the server sends HEAD's headers without the body
            super().add_api_route(path, endpoint, **{**kwargs, "methods": ["HEAD"], "include_in_schema": False})


def public_router() -> APIRouter:
    """A router for the allowlisted public paths only (anything else raises at registration)."""
    return _PublicRouter(RouteClass.PUBLIC)


def route_class_of(route: Any) -> RouteClass | None:
    """The access class a route was registered with, or None (then no role may use it)."""
    value = (getattr(route, "openapi_extra", None) or {}).get(ROUTE_CLASS_KEY)
    try:
        return RouteClass(value) if value is not None else None
    except ValueError:
        return None


def effective_routes(app: Any) -> list[BaseRoute]:
    """Every route the app serves, through included routers (each with its full path)."""
    out: list[BaseRoute] = []
    for entry in app.routes:
        router = getattr(entry, "original_router", None)
        out.extend(effective_routes(router) if router is not None else [entry])
    return out


async def refuse_while_draining(request: Request, ctx: RequestContext) -> None:
    """A stopping server takes no new work: 503 with Retry-After (the client retries elsewhere or later)."""
    gateway = request.app.state.gateway
    if gateway.draining:
        raise APIError(503, "the server is shutting down", code="shutting_down",
                       headers={"Retry-After": str(gateway.retry_after_s)})


def default_guards() -> list[Guard]:
    """The guards every app runs; ``secure.install`` puts the role and limit checks in front."""
    return [refuse_while_draining]
