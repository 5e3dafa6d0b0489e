"""The official openai client against a live uvicorn on loopback (tiny model): chat streaming and not,
completions, models, n, seeds, stop sequences, logprobs, usage; the disclaimer rides on every answer."""

from __future__ import annotations

import pytest
from serve_helpers import live_server, make_app

from medtune import DISCLAIMER

openai = pytest.importorskip("openai")
MESSAGES = [{"role": "system", "content": "You are a careful clinician."},
            {"role": "user", "content": "A 58-year-old man has crushing chest pain. Diagnosis?"}]


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    app = make_app(tiny_model_dir)
    with live_server(app) as (url, _):
        yield url, app


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=server[1].state.test_keys["clinician"], max_retries=0, timeout=60)


def test_models_lists_the_served_model(client):
    models = client.models.list().data
    assert [m.id for m in models] == ["tiny"]
    assert models[0].model_extra["medtune"]["sha256"] == "ab" * 32


def test_chat_non_streaming_with_usage_and_disclaimer(client):
    r = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=12, temperature=0)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 12 and r.usage.prompt_tokens > 10
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.model_extra["medtune"]["disclaimer"] == DISCLAIMER
    assert r.model_extra["medtune"]["request_id"].startswith("req-")


def test_chat_stream_equals_the_non_streamed_greedy_answer(client):
    whole = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=12, temperature=0)
    chunks = list(client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].model_extra["medtune"]["disclaimer"] == DISCLAIMER
    assert chunks[-1].model_extra["medtune"]["disclaimer"] == DISCLAIMER
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_completions_stream_and_not(client):
    prompt = "<|im_start|>user\nFever and dysuria?<|im_end|>\n<|im_start|>assistant\n"
    r = client.completions.create(model="tiny", prompt=prompt, max_tokens=10, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text
    assert r.model_extra["medtune"]["disclaimer"] == DISCLAIMER
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="tiny", prompt=prompt, max_tokens=10, temperature=0, stream=True) if c.choices)
    assert streamed == r.choices[0].text


def test_n_samples_are_seeded_and_distinct(client):
    kw = {"model": "tiny", "messages": MESSAGES, "max_tokens": 8, "temperature": 1.0, "n": 3, "seed": 11}
    a, b = client.chat.completions.create(**kw), client.chat.completions.create(**kw)
    texts = [c.message.content for c in a.choices]
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert texts == [c.message.content for c in b.choices]
    assert len(set(texts)) > 1


def test_stop_sequence_cuts_the_answer(client):
    full = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=16, temperature=0)
    text = full.choices[0].message.content
    stop = text[3:5]
    assert stop and stop in text
    cut = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=16, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_logprobs_and_top_logprobs(client):
    r = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=6, temperature=0, logprobs=True,
                                       top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob)  # greedy picks the most likely
    assert b"".join(bytes(e.bytes) for e in content).decode("utf-8", "replace") == r.choices[0].message.content


def test_completions_legacy_logprobs(client):
    r = client.completions.create(model="tiny", prompt="Fever and", max_tokens=5, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == r.usage.completion_tokens
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)
    assert all(len(t) <= 2 for t in lp.top_logprobs)
