"""Every route but the allowlist runs the guard chain (a new route fails closed), in request-path order.

(The security layer's own checks on these guards, keys, roles and the audit event: test_security_wiring.py.)"""

from __future__ import annotations

import httpx
import pytest
from fastapi.routing import APIRoute
from serve_helpers import auth, live_server, make_app

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


GUARDED = [("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/completions"),
           ("POST", "/v1/analyze_case"), ("GET", "/v1/analyze_case/schema"), ("GET", "/openapi.json"),
           ("GET", "/metrics"), ("GET", "/ready"), ("GET", "/v1/audit/events"), ("GET", "/v1/keys"),
           ("POST", "/v1/keys"), ("DELETE", "/v1/keys/0123456789ab")]
# a role that may use each route (AuthMiddleware refuses the others before the guards run)
ROLE_OF = {"/metrics": "monitor", "/ready": "monitor", "/v1/audit/events": "auditor", "/v1/keys": "admin",
           "/v1/keys/0123456789ab": "admin"}


@pytest.fixture(scope="module")
def app(tiny_model_dir):
    return make_app(tiny_model_dir)


def test_every_route_outside_the_allowlist_runs_the_guards(app):
    routes = effective_routes(app)
    assert {p for _, p in GUARDED} - {"/v1/keys/0123456789ab"} | {"/v1/keys/{key_id}", "/health", "/"} \
        <= {p for p, _, _ in routes}
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
        for method, path in GUARDED:
            r = httpx.request(method, url + path, json={}, headers=auth(app, ROLE_OF.get(path, "clinician")))
            assert r.status_code == 401, (path, r.text)
            assert r.json()["error"]["code"] == "missing_key"
        for path in ["/health", "/", "/static/app.js", "/static/style.css"]:
            assert httpx.get(url + path).status_code == 200, path
        assert httpx.get(url + "/static/../app.py").status_code == 401  # (the client resolves it to /app.py)
        assert httpx.get(url + "/static/../app.py", headers=auth(app)).status_code == 404
        assert httpx.get(url + "/static/app.py").status_code == 404  # a fixed list: no file outside it
    assert "/v1/chat/completions" in seen  # guards see the route template (for per-route policies)


def test_draining_server_refuses_new_work_with_retry_after(tiny_model_dir):
    app = make_app(tiny_model_dir, retry_after_s=7)
    with live_server(app) as (url, _):
        app.state.gateway.draining = True
        r = httpx.post(url + "/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": "x"}]},
                       headers=auth(app))
        assert r.status_code == 503 and r.headers["retry-after"] == "7"
        ready = httpx.get(url + "/ready", headers=auth(app, "monitor"))
        assert ready.status_code == 503
        app.state.gateway.draining = False
        assert httpx.get(url + "/ready", headers=auth(app, "monitor")).json()["status"] == "ready"


def test_response_headers_reach_every_response(tiny_model_dir):
    app = make_app(tiny_model_dir)
    app.state.response_headers["Content-Security-Policy"] = "default-src 'self'"
    with live_server(app) as (url, _):
        for r in (httpx.get(url + "/"), httpx.get(url + "/v1/models"), httpx.get(url + "/nope", headers=auth(app)),
                  httpx.post(url + "/v1/chat/completions", json={}, headers=auth(app))):
            assert r.headers["content-security-policy"] == "default-src 'self'"
            assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-request-id"].startswith("req-")


def test_end_hooks_see_the_texts_and_a_failing_hook_fails_closed(tiny_model_dir):
    app = make_app(tiny_model_dir)
    seen: list = []
    fail = {"on": False}

    async def audit(ctx):
        seen.append((ctx.route, ctx.status, ctx.input_text, ctx.output_text, ctx.completion_tokens, ctx.model_sha256))
        if fail["on"]:
            raise OSError("audit log not writable")

    app.state.end_hooks.append(audit)
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Chest pain?"}], "max_tokens": 5, "temperature": 0}
    with live_server(app) as (url, _):
        ok = httpx.post(url + "/v1/chat/completions", json=body, headers=auth(app))
        assert ok.status_code == 200
        route, status, text_in, text_out, tokens, sha = seen[-1]
        assert (route, status, sha) == ("/v1/chat/completions", 200, "ab" * 32)
        assert "user: Chest pain?" in text_in and text_out == ok.json()["choices"][0]["message"]["content"]
        assert tokens == ok.json()["usage"]["completion_tokens"]
        fail["on"] = True
        refused = httpx.post(url + "/v1/chat/completions", json=body, headers=auth(app))
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "record_failed"
        with pytest.raises(httpx.RemoteProtocolError):  # a stream already under way is cut, not ended normally
            with httpx.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}, headers=auth(app)) as s:
                for _ in s.iter_lines():
                    pass
