"""Operations and the web page: /health (public), /ready and /metrics (ops class: admin and monitor keys),
/openapi.json (inference class: the API's clients), / and /static/* (public)."""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from ..security.keys import RouteClass
from .errors import APIError
from .gateway import Gateway
from .guards import ROUTE_CLASS_KEY, guarded_router, public_router

WEB = resources.files("medtune.serve") / "web"
STATIC = {"app.js": "text/javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"}


def secured_openapi(app: Any) -> dict[str, Any]:
    """The app's OpenAPI document with the bearer scheme declared on every operation that needs a key
    (each also names its access class in ``x-medtune-route-class``)."""
    if getattr(app.state, "openapi_document", None) is None:
        doc = copy.deepcopy(app.openapi())
        doc.setdefault("components", {})["securitySchemes"] = {"bearer": {
            "type": "http", "scheme": "bearer", "description": "An API key from `medtune keys create` (mt_<id>_<secret>)."}}
        for operations in doc.get("paths", {}).values():
            for op in operations.values():
                if isinstance(op, dict) and op.get(ROUTE_CLASS_KEY) != RouteClass.PUBLIC.value:
                    op["security"] = [{"bearer": []}]
        app.state.openapi_document = doc
    return app.state.openapi_document


def make_routers() -> list[APIRouter]:
    """(operations router, API schema router, public router) for one app."""
    public = public_router()
    guarded = guarded_router(RouteClass.OPS, tags=["operations"])
    schema = guarded_router(RouteClass.INFERENCE, tags=["operations"])

    @schema.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        """The OpenAPI schema (FastAPI's own unguarded route is switched off: it needs a key like the API)."""
        return JSONResponse(secured_openapi(request.app))

    @public.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers (the model may still be loading)."""
        return {"status": "ok"}

    @guarded.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        """Readiness: the model is loaded and the server takes requests (503 while loading or stopping)."""
        gateway: Gateway = request.app.state.gateway
        ok = gateway.ready and not gateway.draining
        body = {"status": "ready" if ok else ("stopping" if gateway.draining else "loading"),
                "model": gateway.identity.public(), "slots": gateway.backend.parallel, "in_flight": gateway.in_flight,
                "queue_depth": gateway.queue_depth}
        return JSONResponse(body, status_code=200 if ok else 503, headers={} if ok else {"Retry-After": str(gateway.retry_after_s)})

    @guarded.get("/metrics")
    async def metrics(request: Request) -> Response:
        return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @public.get("/")
    async def index() -> FileResponse:
        return FileResponse(str(WEB / "index.html"), media_type="text/html; charset=utf-8")

    @public.get("/static/{name}")
    async def static(name: str) -> FileResponse:
        if name not in STATIC:  # a fixed list: no path from the URL ever reaches the file system
            raise APIError(404, "no such file")
        return FileResponse(str(WEB / name), media_type=STATIC[name])

    return [guarded, schema, public]
