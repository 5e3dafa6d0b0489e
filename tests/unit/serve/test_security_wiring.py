"""Keys and roles on the live server: every route but the allowlist needs a key (401) of a role that may use it
(403), found by walking the route table so a new route fails closed, HEAD included; the role is checked before
any body is read; constant-time comparison against every stored key; revocation by the CLI takes effect on the
next request; bounds, rate limits (malformed requests count) and the body cap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from serve_helpers import ROLES, auth, live_server, make_app, stub_backend

from medtune.security import keys as keys_module
from medtune.security.audit_verify import read_events
from medtune.security.keys import (
    PUBLIC_PATHS,
    ROLE_ROUTE_CLASSES,
    KeyStore,
    Role,
    RouteClass,
    route_class_problems,
)
from medtune.serve.guards import effective_routes, route_class_of

SRC = Path(__file__).parents[3] / "src"
CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Chest pain?"}]


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    app = make_app(tiny_model_dir, security={"auth_failures_per_minute": 10_000})  # the walk sends many forged keys
    with live_server(app) as (url, _):
        yield url, app


def route_table(app) -> list[tuple[str, str, RouteClass | None]]:
    """(method, path template, access class) of every route the app serves, HEAD included."""
    rows = []
    for route in effective_routes(app):
        cls = route_class_of(route) if isinstance(route, APIRoute) else None
        rows += [(m, route.path, cls) for m in sorted(getattr(route, "methods", None) or {"GET"})]
    return rows


def concrete(path: str) -> str:
    return path.replace("{key_id}", "0123456789ab").replace("{name}", "app.js")


def test_every_route_has_an_access_class_and_only_the_allowlist_is_public(served):
    _, app = served
    table = route_table(app)
    assert route_class_problems({path: cls for _, path, cls in table}) == []
    assert {path for _, path, cls in table if cls is RouteClass.PUBLIC} == PUBLIC_PATHS
    assert {(m, path) for m, path, cls in table if cls is RouteClass.PUBLIC} == \
        {(m, path) for path in PUBLIC_PATHS for m in ("GET", "HEAD")}  # a public GET answers HEAD too
    assert {cls for *_, cls in table} == set(RouteClass)  # every class is served by some route


def test_every_route_but_the_allowlist_is_401_without_a_key_and_403_with_a_wrong_role(served):
    url, app = served
    table = route_table(app)
    assert len(table) >= 15
    for method, path, cls in table:
        target = url + concrete(path)
        if cls is RouteClass.PUBLIC:
            r = httpx.request(method, target)
            assert r.status_code == 200 and (method != "HEAD" or r.content == b""), (method, path)
            continue
        if method == "GET":  # a guarded GET serves no HEAD: without a key that is a 401 as well
            assert httpx.head(target).status_code == 401, path
        bare = httpx.request(method, target, json={})
        assert bare.status_code == 401, (method, path, bare.text)
        assert bare.headers["www-authenticate"].startswith("Bearer") and bare.json()["error"]["code"] == "invalid_api_key"
        forged = httpx.request(method, target, json={}, headers={"Authorization": "Bearer mt_0123456789ab_" + "A" * 43})
        assert forged.status_code == 401, (method, path)
        for role in ROLES:
            r = httpx.request(method, target, json={}, headers=auth(app, role))
            if cls in ROLE_ROUTE_CLASSES[Role(role)]:
                assert r.status_code not in (401, 403), (method, path, role, r.text)
            else:
                assert r.status_code == 403, (method, path, role, r.text)
                assert r.json()["error"]["code"] == "permission_denied" and role in r.json()["error"]["message"]
    assert httpx.get(url + "/no/such/route").status_code == 401  # unknown paths are not an open door either


def test_head_is_public_where_get_is_and_needs_a_key_elsewhere(served):
    """Load balancers and uptime monitors probe with HEAD: the public GET routes answer it without a key (the
    headers of the GET, no body); a guarded route stays 401 without a key, and serves no HEAD with one."""
    url, app = served
    for path in ("/health", "/", "/static/app.js"):
        get, head = httpx.get(url + path), httpx.head(url + path)
        assert head.status_code == 200 and head.content == b"", (path, head.status_code)
        assert head.headers["content-type"] == get.headers["content-type"]
        assert head.headers["content-length"] == get.headers["content-length"]
    assert httpx.head(url + "/metrics").status_code == 401
    assert httpx.head(url + "/metrics", headers=auth(app, "monitor")).status_code == 405
    assert httpx.head(url + "/static/nothing.js").status_code == 404  # the same fixed list as GET


def test_openapi_document_needs_a_key_and_declares_the_bearer_scheme(served):
    url, app = served
    assert httpx.get(url + "/openapi.json").status_code == 401
    doc = httpx.get(url + "/openapi.json", headers=auth(app)).json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["paths"]["/v1/chat/completions"]["post"]["security"] == [{"bearer": []}]
    assert doc["paths"]["/v1/chat/completions"]["post"]["x-medtune-route-class"] == "inference"
    assert "security" not in doc["paths"]["/health"]["get"]


class CountingHmac:
    """Stands in for the `hmac` module inside medtune.security.keys: counts compare_digest calls."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def compare_digest(self, a, b):
        self.calls.append(b)
        return self.real.compare_digest(a, b)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_key_comparison_is_compare_digest_against_every_stored_key(served, monkeypatch):
    url, app = served
    store: KeyStore = app.state.gate.keys
    n = len(store.records())
    assert n >= 4
    counting = CountingHmac(keys_module.hmac)
    monkeypatch.setattr(keys_module, "hmac", counting)
    for role in ("clinician", "monitor"):  # first and last key in the store
        path = CHAT if role == "clinician" else "/metrics"
        body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 2} if role == "clinician" else None
        httpx.request("POST" if body else "GET", url + path, json=body, headers=auth(app, role))  # first use: scrypt once
        counting.calls.clear()
        r = httpx.request("POST" if body else "GET", url + path, json=body, headers=auth(app, role))
        assert r.status_code == 200
        assert len(counting.calls) == n  # one constant-time comparison per stored key, wherever the match is
    counting.calls.clear()
    wrong = "mt_" + store.records()[0].id + "_" + "B" * 43  # a known id with a wrong secret: the slow path
    assert httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
    per_wrong_key = len(counting.calls)
    counting.calls.clear()
    assert httpx.get(url + "/v1/models", headers={"Authorization": "Bearer mt_ffffffffffff_" + "B" * 43}).status_code == 401
    assert len(counting.calls) == per_wrong_key and per_wrong_key % n == 0  # an unknown id costs the same


def test_revoking_with_the_cli_while_serving_fails_the_next_request(tiny_model_dir, tmp_path):
    app = make_app(tiny_model_dir, folder=tmp_path)
    key_file = app.state.gate.keys.path
    key_id = app.state.test_keys["clinician"].split("_")[1]
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 2}
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    with live_server(app) as (url, _):
        assert httpx.post(url + CHAT, json=body, headers=auth(app)).status_code == 200
        done = subprocess.run([sys.executable, "-m", "medtune", "keys", "revoke", key_id, "--store", str(key_file)],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        refused = httpx.post(url + CHAT, json=body, headers=auth(app))
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
        assert httpx.get(url + "/v1/models", headers=auth(app, "clinician")).status_code == 401
        assert httpx.get(url + "/metrics", headers=auth(app, "admin")).status_code == 200  # other keys unaffected


def test_rate_limits_are_429_with_retry_after_per_key(tiny_model_dir):
    app = make_app(tiny_model_dir, security={"requests_per_minute": 3, "tokens_per_minute": 5})
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 6, "temperature": 0}
    with live_server(app) as (url, _):
        first = httpx.post(url + CHAT, json=body, headers=auth(app))
        assert first.status_code == 200 and first.json()["usage"]["completion_tokens"] >= 5
        tokens = httpx.post(url + CHAT, json=body, headers=auth(app))  # the key's 5 tokens a minute are spent
        assert tokens.status_code == 429 and int(tokens.headers["retry-after"]) >= 1
        assert tokens.json()["error"]["code"] == "rate_limit_exceeded" and tokens.json()["error"]["param"] == "tokens_per_minute"
        assert httpx.get(url + "/metrics", headers=auth(app, "admin")).status_code == 200  # another key's window
        for _ in range(2):
            httpx.get(url + "/metrics", headers=auth(app, "admin"))
        requests = httpx.get(url + "/metrics", headers=auth(app, "admin"))
        assert requests.status_code == 429 and requests.json()["error"]["param"] == "requests_per_minute"
        assert int(requests.headers["retry-after"]) >= 1


def test_failed_keys_from_one_address_are_throttled_but_missing_keys_are_not(tiny_model_dir):
    app = make_app(tiny_model_dir, security={"auth_failures_per_minute": 2})
    with live_server(app) as (url, _):
        for _ in range(5):  # a page opened before its user typed a key is not guessing
            assert httpx.get(url + "/v1/models").status_code == 401
        assert httpx.get(url + "/v1/models", headers=auth(app)).status_code == 200
        guess = {"Authorization": "Bearer mt_0123456789ab_" + "C" * 43}
        assert [httpx.get(url + "/v1/models", headers=guess).status_code for _ in range(3)] == [401, 401, 429]
        assert httpx.get(url + "/v1/models", headers=auth(app)).status_code == 429  # the address waits, key or not


def test_bodies_over_the_cap_are_413_before_and_while_reading(tiny_model_dir):
    app = make_app(tiny_model_dir, security={"max_body_bytes": 4096})
    big = {"model": "tiny", "messages": [{"role": "user", "content": "x" * 5000}]}
    with live_server(app) as (url, _):
        declared = httpx.post(url + CHAT, json=big, headers=auth(app))
        assert declared.status_code == 413 and declared.json()["error"]["code"] == "request_too_large"
        assert httpx.post(url + CHAT, json=big).status_code == 413  # before the key: nothing large is read

        def chunks():  # no Content-Length: the cap is enforced on the bytes as they arrive
            yield b'{"model": "tiny", "messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}]}'

        streamed = httpx.post(url + CHAT, content=chunks(), headers={**auth(app), "content-type": "application/json"})
        assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "request_too_large"
        assert httpx.post(url + CHAT, json={**big, "messages": MESSAGES, "max_tokens": 2}, headers=auth(app)).status_code == 200


def post_raw(url: str, app, role: str, body: bytes, path: str = CHAT) -> httpx.Response:
    return httpx.post(url + path, content=body, headers={**auth(app, role), "content-type": "application/json"})


def test_a_role_that_may_not_use_a_route_is_403_before_its_body_is_parsed(tmp_path):
    """FastAPI parses a JSON body before any guard runs: the role is checked before that, so a monitor key's
    malformed inference request is a 403 (its body never read), recorded as such, not a parse error."""
    app = make_app(tmp_path, backend=stub_backend(), folder=tmp_path)
    sent = []
    with live_server(app) as (url, _):
        for path in (CHAT, "/v1/analyze_case"):
            r = post_raw(url, app, "monitor", b'{"model": "tiny", "messages": [', path)
            assert r.status_code == 403, (path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "permission_denied" and "monitor" in r.json()["error"]["message"]
            sent.append((r.headers["x-request-id"], 403, "monitor", path))
        allowed = post_raw(url, app, "clinician", b'{"model": "tiny", "messages": [')
        assert allowed.status_code == 400  # a role that may use the route gets the parse error
        sent.append((allowed.headers["x-request-id"], 400, "clinician", CHAT))
    events = read_events(os.path.join(app.state.settings.security.audit_dir, "audit.jsonl"))
    assert [(e["request_id"], e["status"], e["role"], e["route"]) for e in events] == sent


def test_malformed_bodies_count_against_the_keys_request_rate_once_each(tmp_path):
    """A body that does not parse never reaches the guards, yet it counts against the key's requests_per_minute,
    once, as a served request does (4 a minute here: the fifth request is 429 whatever its body)."""
    app = make_app(tmp_path, backend=stub_backend(), folder=tmp_path, security={"requests_per_minute": 4})
    valid = json.dumps({"model": "tiny", "messages": MESSAGES}).encode()
    with live_server(app) as (url, _):
        statuses = [post_raw(url, app, "clinician", body).status_code
                    for body in (valid, b"{not json", b'{"messages": [', valid, b"{not json", valid)]
        other = httpx.get(url + "/metrics", headers=auth(app, "admin"))
    assert statuses == [200, 400, 400, 200, 429, 429]
    assert other.status_code == 200  # another key's window
