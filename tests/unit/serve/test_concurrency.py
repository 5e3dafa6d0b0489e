"""Backpressure and lifecycle on a live server: a full queue is 503 + Retry-After, a client that goes away
cancels its generation, concurrent requests share the batch, shutdown drains then cancels; metrics count it all."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from serve_helpers import auth, live_server, make_app, tiny_backend

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Chest pain?"}]


def slow(backend, seconds_per_step: float):
    """Make every forward pass of the backend's model take at least ``seconds_per_step`` (a long generation)."""
    backend.model.register_forward_pre_hook(lambda *_: time.sleep(seconds_per_step))
    return backend


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def long_request(max_tokens: int = 900) -> dict:
    return {"model": "tiny", "messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0}


def test_full_queue_is_503_with_retry_after_and_disconnect_cancels(tiny_model_dir):
    backend = slow(tiny_backend(tiny_model_dir, slots=1), 0.01)
    app = make_app(tiny_model_dir, backend=backend, slots=1, queue_size=0, retry_after_s=3)
    gateway = lambda: app.state.gateway  # noqa: E731
    with live_server(app) as (url, _):
        with httpx.Client(timeout=30, headers=auth(app)) as client:
            with client.stream("POST", url + CHAT, json={**long_request(), "stream": True}) as stream:
                lines = stream.iter_lines()
                first = next(line for line in lines if line.startswith("data: "))
                assert json.loads(first[6:])["choices"][0]["delta"]["role"] == "assistant"
                busy = client.post(url + CHAT, json=long_request(4))
                assert busy.status_code == 503 and busy.headers["retry-after"] == "3"
                assert busy.json()["error"]["code"] == "queue_full"
                started = time.time()
            # the stream is closed: the server must cancel the generation, not finish its 900 tokens (~9 s)
            assert wait_until(lambda: gateway().in_flight == 0 and backend.load == 0, 5)
            assert time.time() - started < 5
        # a non-streaming client that gives up is cancelled the same way
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + CHAT, json=long_request(), timeout=0.5, headers=auth(app))
        assert wait_until(lambda: gateway().in_flight == 0 and backend.load == 0, 5)
        ok = httpx.post(url + CHAT, json=long_request(4), timeout=30, headers=auth(app))
        assert ok.status_code == 200
        metrics = httpx.get(url + "/metrics", headers=auth(app, "monitor")).text
    assert 'medtune_rejected_total{reason="queue_full"} 1.0' in metrics
    assert 'medtune_requests_total{route="/v1/chat/completions",status="503"} 1.0' in metrics
    assert 'medtune_requests_total{route="/v1/chat/completions",status="499"}' in metrics  # the client that left


def test_concurrent_requests_share_the_decode_batch(tiny_model_dir):
    backend = tiny_backend(tiny_model_dir, slots=4)
    rows: list[int] = []
    backend.model.register_forward_pre_hook(
        lambda _m, _a, kw: rows.append(kw["input_ids"].shape[0]) if kw["input_ids"].shape[1] == 1 else None,
        with_kwargs=True)
    slow(backend, 0.005)
    app = make_app(tiny_model_dir, backend=backend, slots=4)
    with live_server(app) as (url, _):
        results: list[int] = []

        def call() -> None:
            results.append(httpx.post(url + CHAT, json=long_request(40), timeout=60, headers=auth(app)).status_code)

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        metrics = httpx.get(url + "/metrics", headers=auth(app, "monitor")).text
    assert results == [200] * 4
    assert max(rows) >= 3  # several requests decoded in one forward pass
    assert "medtune_time_to_first_token_seconds_count" in metrics and "medtune_generated_tokens_total" in metrics
    assert "medtune_queue_depth 0.0" in metrics and "medtune_requests_in_flight 0.0" in metrics


def test_shutdown_finishes_in_flight_requests_within_the_timeout(tiny_model_dir):
    backend = slow(tiny_backend(tiny_model_dir, slots=2), 0.01)
    app = make_app(tiny_model_dir, backend=backend, slots=2, shutdown_timeout_s=20)
    result: dict = {}
    with live_server(app, shutdown_s=20) as (url, server):
        def call() -> None:
            result["r"] = httpx.post(url + CHAT, json=long_request(60), timeout=60, headers=auth(app))

        t = threading.Thread(target=call)
        t.start()
        assert wait_until(lambda: backend.load > 0, 10)
        server.should_exit = True  # what SIGTERM does
        t.join(30)
    r = result["r"]
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 60  # it was allowed to finish
    assert app.state.gateway.draining


def test_shutdown_cancels_what_outlives_the_timeout(tiny_model_dir):
    backend = slow(tiny_backend(tiny_model_dir, slots=1), 0.02)
    app = make_app(tiny_model_dir, backend=backend, slots=1, shutdown_timeout_s=0.5)
    with live_server(app, shutdown_s=0.5) as (url, server):
        def call() -> None:
            try:
                with httpx.stream("POST", url + CHAT, json={**long_request(), "stream": True}, timeout=60,
                                  headers=auth(app)) as s:
                    for _ in s.iter_lines():
                        pass
            except httpx.HTTPError:
                pass  # the connection is cut at the deadline

        t = threading.Thread(target=call)
        t.start()
        assert wait_until(lambda: backend.load > 0, 10)
        started = time.time()
        server.should_exit = True
    assert time.time() - started < 8  # 900 tokens would take ~18 s
    t.join(10)
    assert backend.load == 0 and not backend._thread.is_alive()
