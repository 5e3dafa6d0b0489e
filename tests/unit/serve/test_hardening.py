"""Edges a reviewer found: a body not sent as JSON, seeds out of range and chat templates that refuse
messages are 4xx (never a 500, never the body in a log); an unexpected fault logs no request text;
forwarded headers do not pick the address the auth limiter counts; a streamed analysis carries the
disclaimer with its first text; a stream abandoned before its first token is recorded as 499."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
from serve_helpers import (
    ALTERNATING_TEMPLATE,
    auth,
    live_server,
    make_app,
    security_section,
    stub_backend,
    tiny_backend,
)

from medtune import DISCLAIMER
from medtune.serve.backends import BackendError, Finished, Piece

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Chest pain?"}]
NOTE = "Mrs Jane Doe, 45, MRN 4471234, HIV positive, new breast lump"
NOTE_WORDS = ["Jane", "Doe", "4471234", "HIV", "positive", "breast", "lump"]
SEED_MAX = 2**32 - 1  # llama.cpp's seed is a uint32


def log_text(caplog) -> str:
    """Every record of every logger (uvicorn's too: live servers here run with log_config=None, as
    `medtune serve` does, so its loggers propagate to the root), with arguments and tracebacks."""
    return "\n".join(caplog.handler.format(r) for r in caplog.records)


def assert_no_note(text: str) -> None:
    leaked = [w for w in NOTE_WORDS if w.lower() in text.lower()]
    assert not leaked, f"the log quotes the request: {leaked}"


def sse_events(response: httpx.Response) -> list[dict]:
    return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ") and line != "data: [DONE]"]


@pytest.fixture(scope="module")
def tiny_server(tiny_model_dir):
    """The tiny model on a live uvicorn (real sampling: torch generators seeded per sample)."""
    app = make_app(tiny_model_dir, analyze_max_tokens=16, analyze_samples=2)
    with live_server(app, log_config=None) as (url, _), \
            httpx.Client(base_url=url, headers=auth(app), timeout=120) as client:
        yield client


# ---------------------------------------------------------------------------- bodies not sent as JSON
@pytest.mark.parametrize(("path", "content", "content_type"), [
    ("/v1/completions", NOTE, "text/plain"),
    ("/v1/analyze_case", "case=" + NOTE.replace(" ", "+"), "application/x-www-form-urlencoded"),
    (CHAT, json.dumps({"model": "tiny", "messages": [{"role": "user", "content": NOTE}]}), "text/plain; charset=utf-8"),
    (CHAT, NOTE, None),
], ids=["text-plain", "form-encoded", "json-sent-as-text", "no-content-type"])
def test_a_body_not_sent_as_json_is_415_and_never_logged(tiny_server, caplog, path, content, content_type):
    caplog.set_level(logging.DEBUG)
    headers = {"content-type": content_type} if content_type else {}
    r = tiny_server.post(path, content=content.encode(), headers=headers)
    assert r.status_code == 415, r.text
    err = r.json()["error"]
    assert err["code"] == "unsupported_media_type" and "application/json" in err["message"]
    assert_no_note(r.text)  # the message names the fix, not the body
    assert_no_note(log_text(caplog))
    assert tiny_server.post(CHAT, json={"model": "tiny", "messages": MESSAGES, "max_tokens": 2}).status_code == 200


# ---------------------------------------------------------------------------- seeds
ROUTES = [(CHAT, {"model": "tiny", "messages": MESSAGES, "max_tokens": 2, "temperature": 1.0, "n": 2}),
          ("/v1/completions", {"model": "tiny", "prompt": "Chest pain", "max_tokens": 2, "temperature": 1.0}),
          ("/v1/analyze_case", {"case": "Fever and cough.", "samples": 2})]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("path", "body"), ROUTES)
def test_seeds_out_of_range_are_400_on_every_route(tiny_server, path, body, stream):
    for seed in (2**64, SEED_MAX + 1, -1):
        r = tiny_server.post(path, json={**body, "seed": seed, "stream": stream})
        assert r.status_code == 400, (seed, r.text)
        err = r.json()["error"]
        assert err["param"] == "seed" and err["type"] == "invalid_request_error", err
    # the largest seed is taken by the engine (sample k is seeded SEED_MAX + k), streamed or not
    with tiny_server.stream("POST", path, json={**body, "seed": SEED_MAX, "stream": stream}) as r:
        assert r.status_code == 200
        events = sse_events(r) if stream else [json.loads(r.read())]
    assert events and not any("error" in e for e in events), events


def test_the_seed_bound_is_published():
    from medtune.serve import protocol
    from medtune.serve.case_schema import AnalyzeCaseRequest
    from medtune.serve.protocol import ChatCompletionRequest, CompletionRequest

    assert protocol.SEED_MAX == SEED_MAX
    for model in (ChatCompletionRequest, CompletionRequest, AnalyzeCaseRequest):
        seed = model.model_json_schema()["properties"]["seed"]["anyOf"][0]
        assert (seed["minimum"], seed["maximum"]) == (0, SEED_MAX)


# ---------------------------------------------------------------------------- chat templates that refuse
def _template_refusals(app, url: str) -> None:
    system_first = [{"role": "system", "content": "You are a clinician."}, {"role": "user", "content": "Chest pain?"}]
    for body in ({"model": "tiny", "messages": system_first},
                 {"model": "tiny", "messages": system_first, "stream": True},
                 {"model": "tiny", "messages": MESSAGES * 2}):
        r = httpx.post(url + CHAT, json=body, headers=auth(app), timeout=60)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "chat_template_error" and err["param"] == "messages"
        assert "Conversation roles must alternate" in err["message"]
    ok = httpx.post(url + CHAT, json={"model": "tiny", "messages": MESSAGES, "max_tokens": 2}, headers=auth(app), timeout=60)
    assert ok.status_code == 200, ok.text


def test_a_gguf_chat_template_that_raises_is_400_with_its_message(tmp_path):
    # the llama.cpp backend's renderer (render_chat_template, the sandbox), in a backend without a model
    app = make_app(tmp_path, backend=stub_backend(template=ALTERNATING_TEMPLATE), folder=tmp_path,
                   system_prompt="You are a careful clinician.")
    with live_server(app) as (url, _):
        _template_refusals(app, url)
        # /v1/analyze_case with a system prompt: refused before its stream starts
        for stream in (False, True):
            r = httpx.post(url + "/v1/analyze_case", json={"case": "Fever.", "stream": stream}, headers=auth(app))
            assert r.status_code == 400 and r.json()["error"]["code"] == "chat_template_error", r.text


def test_a_transformers_chat_template_that_raises_is_400_with_its_message(tiny_model_dir):
    backend = tiny_backend(tiny_model_dir)
    backend.tokenizer.chat_template = ALTERNATING_TEMPLATE  # apply_chat_template's own raise_exception
    app = make_app(tiny_model_dir, backend=backend)
    with live_server(app) as (url, _):
        _template_refusals(app, url)


def test_a_broken_template_is_the_servers_fault():
    from jinja2 import TemplateSyntaxError

    from medtune.serve.backends.base import template_refusal

    err = template_refusal(TemplateSyntaxError("unexpected '}'", 1))
    assert isinstance(err, BackendError) and err.status == 500 and "TemplateSyntaxError" in str(err)


# ---------------------------------------------------------------------------- unexpected faults
def test_an_unexpected_fault_is_a_500_that_logs_no_request_text(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)

    async def crash_mid_stream(prepared, params):
        yield Piece(0, "Likely ")
        raise RuntimeError(f"engine state dump: {NOTE}")  # an exception whose message quotes the patient

    app = make_app(tmp_path, backend=stub_backend(crash_mid_stream), folder=tmp_path)

    async def faulty_guard(request, ctx):
        if request.headers.get("x-test-fault"):
            raise ValueError(f"could not handle {NOTE}")

    app.state.guards.append(faulty_guard)
    with live_server(app, log_config=None) as (url, _):
        r = httpx.post(url + CHAT, json={"model": "tiny", "messages": MESSAGES}, headers={**auth(app), "x-test-fault": "1"})
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
        assert r.headers["x-request-id"].startswith("req-") and r.headers["x-content-type-options"] == "nosniff"
        with pytest.raises(httpx.RemoteProtocolError):  # a stream under way is cut, not ended normally
            with httpx.stream("POST", url + CHAT, json={"model": "tiny", "messages": MESSAGES, "stream": True},
                              headers=auth(app)) as s:
                for _ in s.iter_lines():
                    pass
        assert httpx.get(url + "/health").status_code == 200
    logged = log_text(caplog)
    assert_no_note(logged)
    assert f"{r.headers['x-request-id']}, POST /v1/chat/completions): builtins.ValueError at" in logged
    assert "builtins.RuntimeError at" in logged  # the type and where: enough to find it, nothing to leak


# ---------------------------------------------------------------------------- forwarded headers
def test_forwarded_headers_do_not_reset_the_auth_failure_limit(tiny_model_dir, tmp_path):
    from medtune.serve.run import uvicorn_options
    from medtune.serve.settings import ServeSettings

    options = uvicorn_options(ServeSettings(security=security_section(tmp_path)))
    assert options["proxy_headers"] is False
    proxy = {k: v for k, v in options.items() if k in ("proxy_headers", "forwarded_allow_ips")}
    app = make_app(tiny_model_dir, backend=stub_backend(), folder=tmp_path, security={"auth_failures_per_minute": 2})
    guess = "Bearer mt_0123456789ab_" + "C" * 43
    with live_server(app, **proxy) as (url, _):  # 127.0.0.1: the peer uvicorn would trust by default
        statuses = [httpx.get(url + "/v1/models", headers={"Authorization": guess, "X-Forwarded-For": f"10.0.0.{i}",
                                                            "Forwarded": f"for=10.0.1.{i}"}).status_code
                    for i in range(4)]
    assert statuses == [401, 401, 429, 429]


def test_a_declared_reverse_proxy_names_the_client(tiny_model_dir, tmp_path):
    """security.trusted_proxies: behind the deployment's own proxy the failed-key limit stays per client."""
    from medtune.serve.run import uvicorn_options
    from medtune.serve.settings import ServeSettings

    options = uvicorn_options(ServeSettings(security=security_section(tmp_path, trusted_proxies=["127.0.0.1"])))
    assert options["proxy_headers"] is True and options["forwarded_allow_ips"] == "127.0.0.1"
    proxy = {k: v for k, v in options.items() if k in ("proxy_headers", "forwarded_allow_ips")}
    app = make_app(tiny_model_dir, backend=stub_backend(), folder=tmp_path, security={"auth_failures_per_minute": 2})
    guess = "Bearer mt_0123456789ab_" + "C" * 43
    with live_server(app, **proxy) as (url, _):
        one = [httpx.get(url + "/v1/models", headers={"Authorization": guess, "X-Forwarded-For": "10.0.0.1"}).status_code
               for _ in range(3)]
        other = httpx.get(url + "/v1/models", headers={"Authorization": guess, "X-Forwarded-For": "10.0.0.2"}).status_code
    assert one == [401, 401, 429] and other == 401  # another client behind the proxy is not locked out


# ---------------------------------------------------------------------------- streamed analysis
def test_a_streamed_analysis_that_fails_after_its_first_text_carried_the_disclaimer(tmp_path):
    async def fail_after_text(prepared, params):
        yield Piece(0, "The most likely diagnosis is ")
        yield Piece(0, "pneumonia")
        yield Finished(0, "error", 2, "engine failed")

    app = make_app(tmp_path, backend=stub_backend(fail_after_text), folder=tmp_path)
    with live_server(app) as (url, _), httpx.stream("POST", url + "/v1/analyze_case", headers=auth(app),
                                                   json={"case": "Fever and cough.", "samples": 2, "stream": True}) as r:
        assert r.status_code == 200
        events = sse_events(r)
    deltas = [e for e in events if e.get("type") == "delta"]
    assert deltas and deltas[0]["medtune"]["disclaimer"] == DISCLAIMER
    assert deltas[0]["medtune"]["request_id"] == r.headers["x-request-id"]
    assert all("medtune" not in e for e in deltas[1:])  # once, as on a chat stream's first chunk
    assert events[-1]["error"]["code"] == "generation_failed" and not any(e.get("type") == "analysis" for e in events)


def test_a_streamed_analysis_sends_the_disclaimer_before_its_text(tmp_path):
    app = make_app(tmp_path, backend=stub_backend(), folder=tmp_path)
    with live_server(app) as (url, _), httpx.stream("POST", url + "/v1/analyze_case", headers=auth(app),
                                                   json={"case": "Fever and cough.", "stream": True}) as r:
        events = sse_events(r)
    assert events[0]["type"] == "delta" and events[0]["medtune"]["disclaimer"] == DISCLAIMER
    assert events[-1]["type"] == "analysis" and events[-1]["analysis"]["disclaimer"] == DISCLAIMER


# ---------------------------------------------------------------------------- abandoned streams
def test_a_stream_abandoned_before_its_first_token_is_recorded_as_499():
    from starlette.responses import StreamingResponse

    from medtune.serve.context import CLIENT_CLOSED, ContextMiddleware

    async def scenario() -> tuple[list, list]:
        never = asyncio.Event()

        async def tokens():
            await never.wait()  # the first token never comes
            yield "data: x\n\n"

        async def app(scope, receive, send):
            await StreamingResponse(tokens(), media_type="text/event-stream")(scope, receive, send)

        seen: list = []

        async def hook(ctx):
            seen.append(ctx.status)

        inbox = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive():
            if inbox:
                return inbox.pop(0)
            await asyncio.sleep(0.05)
            return {"type": "http.disconnect"}  # the client closes before any token

        sent: list = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "method": "POST",
                 "path": "/v1/chat/completions", "headers": [], "query_string": b""}
        await asyncio.wait_for(ContextMiddleware(app, [hook], {})(scope, receive, send), 5)
        return seen, sent

    seen, sent = asyncio.run(scenario())
    assert seen == [CLIENT_CLOSED]
    assert sent == []  # the held 200 never went out: the client got nothing


# ---------------------------------------------------------------------------- what leaves through side channels
def test_a_method_that_is_not_a_method_is_logged_and_audited_as_other(tiny_server, caplog):
    """h11 accepts any token as a method: it was written to the access log as sent (the audit log and the error
    boundary already wrote OTHER); now the request context holds the safe form, one sanitiser for all three."""
    caplog.set_level(logging.INFO)
    r = tiny_server.request("JANEDOEHIV", "/v1/models")
    assert r.status_code in (401, 403, 404, 405), r.status_code
    text = "\n".join(caplog.handler.format(r) for r in caplog.records if not r.name.startswith("httpx"))  # the client's own
    assert "JANEDOEHIV" not in text and " OTHER " in text


def test_fastapis_native_telemetry_is_off(tiny_model_dir):
    """FastAPI 0.165 traces every request (url.path, url.query) and logs exception messages to OpenTelemetry as
    soon as a tracer or an OTLP exporter is configured in the environment. The SDK is not installed here, so the
    switch is checked where FastAPI keeps it."""
    app = make_app(tiny_model_dir)
    assert not any(app._telemetry[k] for k in ("tracing", "metrics", "logs", "operation_spans", "auto_configure"))
    assert not app._native_telemetry.enabled()
