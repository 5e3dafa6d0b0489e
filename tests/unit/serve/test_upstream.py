"""--backend openai: medtune in front of another OpenAI-compatible server (here a second medtune, as it
would be vLLM): answers pass through, the case endpoint falls back to sample agreement, failures are 4xx/502."""

from __future__ import annotations

import httpx
import pytest
from serve_helpers import auth, live_server, make_app

from medtune import DISCLAIMER
from medtune.serve.backends.upstream import build_upstream
from medtune.serve.settings import ServeSettings

openai = pytest.importorskip("openai")
MESSAGES = [{"role": "user", "content": "Chest pain?"}]


UPSTREAM_KEY_ENV = "MEDTUNE_TEST_UPSTREAM_KEY"


@pytest.fixture(scope="module")
def upstream(tiny_model_dir):
    """The upstream (a medtune with its own keys); the front sends the upstream's clinician key."""
    app = make_app(tiny_model_dir)
    with live_server(app) as (url, _), pytest.MonkeyPatch.context() as mp:
        mp.setenv(UPSTREAM_KEY_ENV, app.state.test_keys["clinician"])
        yield url, app


def front(tiny_model_dir, **settings):
    """medtune in front of the upstream (its own key store and audit log)."""
    s = ServeSettings(backend="openai", served_name="front", upstream_key_env=UPSTREAM_KEY_ENV, **settings)
    backend, identity = build_upstream(s)
    return make_app(tiny_model_dir, backend=backend, identity=identity, served_name="front",
                    upstream_key_env=UPSTREAM_KEY_ENV, **settings)


@pytest.fixture(scope="module")
def gateway(upstream, tiny_model_dir):
    app = front(tiny_model_dir, model="tiny", endpoint=upstream[0] + "/v1", analyze_samples=3, analyze_max_tokens=16)
    with live_server(app) as (url, _):
        yield url, app


def test_chat_passes_through_and_carries_medtunes_fields(upstream, gateway):
    direct = openai.OpenAI(base_url=upstream[0] + "/v1", api_key=upstream[1].state.test_keys["clinician"], max_retries=0)
    front_client = openai.OpenAI(base_url=gateway[0] + "/v1", api_key=gateway[1].state.test_keys["clinician"], max_retries=0)
    kw = {"messages": MESSAGES, "max_tokens": 10, "temperature": 0}
    want = direct.chat.completions.create(model="tiny", **kw).choices[0].message.content
    got = front_client.chat.completions.create(model="front", **kw)
    assert got.choices[0].message.content == want
    assert got.model_extra["medtune"]["disclaimer"] == DISCLAIMER and got.model_extra["medtune"]["model_sha256"] is None
    assert got.usage.completion_tokens > 0
    streamed = "".join(c.choices[0].delta.content or "" for c in front_client.chat.completions.create(
        model="front", stream=True, **kw) if c.choices)
    assert streamed == want
    n = front_client.chat.completions.create(model="front", messages=MESSAGES, max_tokens=6, temperature=1.0, n=2, seed=3)
    assert [c.index for c in n.choices] == [0, 1]
    text = front_client.completions.create(model="front", prompt="Fever", max_tokens=5, temperature=0)
    assert text.choices[0].text == direct.completions.create(model="tiny", prompt="Fever", max_tokens=5, temperature=0).choices[0].text


def test_case_analysis_uses_sample_agreement_behind_an_upstream(gateway):
    url, app = gateway
    doc = httpx.post(url + "/v1/analyze_case", json={"case": "Chest pain.", "options": {"A": "MI", "B": "GERD"}},
                     timeout=120, headers=auth(app)).json()
    assert doc["confidence"]["method"] == "sample_agreement" and doc["confidence"]["samples"] == 3
    assert doc["model"] == {"name": "front", "backend": "openai", "sha256": None, "run_id": None}


def test_upstream_errors_are_client_errors_or_502(upstream, tiny_model_dir):
    app = front(tiny_model_dir, model="not-there", endpoint=upstream[0] + "/v1")
    with live_server(app) as (url, _):
        r = httpx.post(url + "/v1/chat/completions", json={"model": "front", "messages": MESSAGES}, headers=auth(app))
        assert r.status_code == 404 and r.json()["error"]["code"] == "upstream_error"
    app = front(tiny_model_dir, model="tiny", endpoint="http://127.0.0.1:9/v1")
    with live_server(app) as (url, _):
        r = httpx.post(url + "/v1/chat/completions", json={"model": "front", "messages": MESSAGES}, headers=auth(app))
        assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_unreachable"
