"""Every route but the allowlist runs the guard chain (a new route fails closed), in request-path order."""

from __future__ import annotations

import httpx
import pytest
from fastapi.routing import APIRoute
from serve_helpers import live_server, make_app

from medtune.serve.errors import APIError
from medtune.serve.guards import PUBLIC_PATHS, public_router, run_guards


def effective_routes(app):
    """(path, route, dependency callables) for every route, through FastAPI's included routers."""
    out = []
    for entry in app.routes:
        router = getattr(entry, "original_router", None)
        if router is None:
            out.append((entry.path, entry, []))
            continue
        router_deps = [d.dependency for d in router.dependencies]
        for route in router.routes:
            deps = router_deps + [d.dependency for d in getattr(route, "dependencies", [])]
            out.append((route.path, route, deps))
    return out


@pytest.fixture(scope="module")
def app(tiny_model_dir):
    return make_app(tiny_model_dir)


def test_every_route_outside_the_allowlist_runs_the_guards(app):
    routes = effective_routes(app)
    assert {"/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/analyze_case", "/metrics",
            "/ready", "/health", "/"} <= {p for p, _, _ in routes}
    for path, route, deps in routes:
        if path in PUBLIC_PATHS:
            continue
        assert isinstance(route, APIRoute), f"{path}: a plain route cannot carry the guards"
        assert run_guards in deps, f"{path} skips the guard chain"


def test_public_router_refuses_paths_outside_the_allowlist():
    router = public_router()
    with pytest.raises(ValueError, match="PUBLIC_PATHS"):
        router.add_api_route("/v1/secret", lambda: {})


def test_a_guard_refuses_every_guarded_route_and_no_public_one(tiny_model_dir):
    app = make_app(tiny_model_dir)
    seen: list[str] = []

    async def deny(request, ctx):
        seen.append(ctx.route)
        raise APIError(401, "no key", code="missing_key")

    app.state.guards.insert(0, deny)
    with live_server(app) as (url, _):
        for method, path in [("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/completions"),
                             ("POST", "/v1/analyze_case"), ("GET", "/v1/analyze_case/schema"), ("GET", "/metrics"),
                             ("GET", "/ready")]:
            r = httpx.request(method, url + path, json={})
            assert r.status_code == 401, (path, r.text)
            assert r.json()["error"]["code"] == "missing_key"
        for path in ["/health", "/", "/static/app.js", "/static/style.css"]:
            assert httpx.get(url + path).status_code == 200, path
        assert httpx.get(url + "/static/../app.py").status_code == 404
    assert "/v1/chat/completions" in seen  # guards see the route template (for per-route policies)


def test_draining_server_refuses_new_work_with_retry_after(tiny_model_dir):
    app = make_app(tiny_model_dir, retry_after_s=7)
    with live_server(app) as (url, _):
        app.state.gateway.draining = True
        r = httpx.post(url + "/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 503 and r.headers["retry-after"] == "7"
        ready = httpx.get(url + "/ready")
        assert ready.status_code == 503
        app.state.gateway.draining = False
        assert httpx.get(url + "/ready").json()["status"] == "ready"
