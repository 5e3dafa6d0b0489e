"""--backend openai: medtune in front of another OpenAI-compatible server (here a second medtune, as it
would be vLLM): answers pass through, the case endpoint falls back to sample agreement, failures are 4xx/502."""

from __future__ import annotations

import httpx
import pytest
from serve_helpers import live_server, make_app

from medtune import DISCLAIMER
from medtune.serve.app import create_app
from medtune.serve.backends.upstream import build_upstream
from medtune.serve.settings import ServeSettings

openai = pytest.importorskip("openai")
MESSAGES = [{"role": "user", "content": "Chest pain?"}]


@pytest.fixture(scope="module")
def upstream(tiny_model_dir):
    with live_server(make_app(tiny_model_dir)) as (url, _):
        yield url


@pytest.fixture(scope="module")
def gateway_url(upstream):
    settings = ServeSettings(model="tiny", backend="openai", endpoint=upstream + "/v1", served_name="front",
                             analyze_samples=3, analyze_max_tokens=16)
    backend, identity = build_upstream(settings)
    with live_server(create_app(settings, backend=backend, identity=identity)) as (url, _):
        yield url


def test_chat_passes_through_and_carries_medtunes_fields(upstream, gateway_url):
    direct = openai.OpenAI(base_url=upstream + "/v1", api_key="x", max_retries=0)
    front = openai.OpenAI(base_url=gateway_url + "/v1", api_key="x", max_retries=0)
    kw = {"messages": MESSAGES, "max_tokens": 10, "temperature": 0}
    want = direct.chat.completions.create(model="tiny", **kw).choices[0].message.content
    got = front.chat.completions.create(model="front", **kw)
    assert got.choices[0].message.content == want
    assert got.model_extra["medtune"]["disclaimer"] == DISCLAIMER and got.model_extra["medtune"]["model_sha256"] is None
    assert got.usage.completion_tokens > 0
    streamed = "".join(c.choices[0].delta.content or "" for c in front.chat.completions.create(model="front", stream=True, **kw)
                       if c.choices)
    assert streamed == want
    n = front.chat.completions.create(model="front", messages=MESSAGES, max_tokens=6, temperature=1.0, n=2, seed=3)
    assert [c.index for c in n.choices] == [0, 1]
    text = front.completions.create(model="front", prompt="Fever", max_tokens=5, temperature=0)
    assert text.choices[0].text == direct.completions.create(model="tiny", prompt="Fever", max_tokens=5, temperature=0).choices[0].text


def test_case_analysis_uses_sample_agreement_behind_an_upstream(gateway_url):
    doc = httpx.post(gateway_url + "/v1/analyze_case", json={"case": "Chest pain.", "options": {"A": "MI", "B": "GERD"}},
                     timeout=120).json()
    assert doc["confidence"]["method"] == "sample_agreement" and doc["confidence"]["samples"] == 3
    assert doc["model"] == {"name": "front", "backend": "openai", "sha256": None, "run_id": None}


def test_upstream_errors_are_client_errors_or_502(upstream):
    settings = ServeSettings(model="not-there", backend="openai", endpoint=upstream + "/v1", served_name="front")
    backend, identity = build_upstream(settings)
    with live_server(create_app(settings, backend=backend, identity=identity)) as (url, _):
        r = httpx.post(url + "/v1/chat/completions", json={"model": "front", "messages": MESSAGES})
        assert r.status_code == 404 and r.json()["error"]["code"] == "upstream_error"
    settings = ServeSettings(model="tiny", backend="openai", endpoint="http://127.0.0.1:9/v1", served_name="front")
    backend, identity = build_upstream(settings)
    with live_server(create_app(settings, backend=backend, identity=identity)) as (url, _):
        r = httpx.post(url + "/v1/chat/completions", json={"model": "front", "messages": MESSAGES})
        assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_unreachable"
