"""The live queue: requests that arrive while others decode get the same greedy tokens as alone;
cancellation frees rows; seeded sampling repeats; log-probabilities are the model's."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from test_continuous import _ids, _one_at_a_time, _stop_token
from tiny import lively

from medtune.infer import continuous, live
from medtune.infer.live import LiveBatcher, LiveRequest


@pytest.fixture()
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


class Collector:
    """Gathers emitted tokens per sample; ``done`` is set when every sample has ended."""

    def __init__(self, n: int = 1):
        self.tokens: list[list[int]] = [[] for _ in range(n)]
        self.details: list[list[dict]] = [[] for _ in range(n)]
        self.finish: list[str | None] = [None] * n
        self.done = threading.Event()

    def __call__(self, sample: int, token: int | None, info: dict) -> None:
        if token is None:
            self.finish[sample] = info["finish_reason"]
            if all(f is not None for f in self.finish):
                self.done.set()
        else:
            self.tokens[sample].append(token)
            self.details[sample].append(info)


@pytest.fixture()
def engine_factory():
    started: list[tuple[LiveBatcher, threading.Thread]] = []

    def make(model, tok, stop: int, max_rows: int) -> LiveBatcher:
        engine = LiveBatcher(model, max_rows=max_rows, eos_ids={stop}, pad_id=tok.pad_token_id)
        thread = threading.Thread(target=engine.serve_forever, daemon=True)
        thread.start()
        started.append((engine, thread))
        return engine

    yield make
    for engine, thread in started:
        engine.stop()
        thread.join(10)
        assert not thread.is_alive()


def test_late_arrivals_join_the_running_batch_with_unchanged_greedy_tokens(tiny_model, tok, engine_factory, monkeypatch):
    model = lively(tiny_model)
    ids, max_new, pad = _ids(tok), 16, tok.pad_token_id
    stop = _stop_token(model, ids, max_new, pad)
    expected = _one_at_a_time(model, ids, max_new, stop, pad)
    monkeypatch.setattr(live, "SLACK_COLUMNS", 2)  # the buffer fills often: shifts and growth are exercised
    monkeypatch.setattr(continuous, "SLACK_COLUMNS", 2)
    widths: list[tuple[int, int]] = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kw: widths.append(tuple(kw["input_ids"].shape)),
                                           with_kwargs=True)
    engine = engine_factory(model, tok, stop, max_rows=3)
    collectors = [Collector() for _ in ids]
    try:
        for i, (prompt, c) in enumerate(zip(ids, collectors)):
            engine.submit(LiveRequest(prompt=prompt, max_new_tokens=max_new, emit=c))
            if i == 1:
                time.sleep(0.05)  # the first two are decoding when the rest arrive
        for c in collectors:
            assert c.done.wait(60)
    finally:
        hook.remove()
    assert [c.tokens[0] for c in collectors] == expected
    assert {c.finish[0] for c in collectors} <= {"stop", "length"}
    decode_rows = [rows for rows, width in widths if width == 1]
    assert max(decode_rows) == 3  # never more rows than max_rows
    first_decode = next(i for i, (_, w) in enumerate(widths) if w == 1)
    assert any(w > 1 for _, w in widths[first_decode:])  # prompts prefilled while others decoded


def test_cancel_frees_the_row_and_others_finish(tiny_model, tok, engine_factory):
    model = lively(tiny_model)
    ids = _ids(tok)
    expected = _one_at_a_time(model, ids[:2], 12, -1, tok.pad_token_id)
    engine = engine_factory(model, tok, stop=-1, max_rows=2)
    long = Collector()
    long_request = LiveRequest(prompt=ids[2], max_new_tokens=10_000, emit=long)
    engine.submit(long_request)
    while not long.tokens[0]:
        time.sleep(0.005)
    others = [Collector(), Collector()]
    for prompt, c in zip(ids[:2], others):
        engine.submit(LiveRequest(prompt=prompt, max_new_tokens=12, emit=c))
    long_request.cancel()
    assert long.done.wait(30) and long.finish == ["cancelled"]
    for c in others:
        assert c.done.wait(60)
    assert [c.tokens[0] for c in others] == expected
    assert len(long.tokens[0]) < 10_000
    deadline = time.time() + 5
    while (engine.load or engine.kv is not None) and time.time() < deadline:
        time.sleep(0.01)
    assert engine.load == 0 and engine.kv is None  # idle: buffers released


def test_seeded_samples_repeat_and_differ_between_samples(tiny_model, tok, engine_factory):
    model = lively(tiny_model, scale=0.05)  # a flatter distribution: samples differ
    engine = engine_factory(model, tok, stop=-1, max_rows=4)
    prompt = _ids(tok)[1]
    runs = []
    for _ in range(2):
        c = Collector(n=3)
        engine.submit(LiveRequest(prompt=prompt, max_new_tokens=8, emit=c, n=3, temperature=1.0, seed=7))
        assert c.done.wait(60)
        runs.append(c.tokens)
    assert runs[0] == runs[1]
    assert len({tuple(t) for t in runs[0]}) > 1
    assert all(len(t) == 8 for t in runs[0])


def test_logprobs_are_the_models_own(tiny_model, tok, engine_factory):
    model = lively(tiny_model)
    engine = engine_factory(model, tok, stop=-1, max_rows=2)
    prompt = _ids(tok)[0]
    c = Collector()
    engine.submit(LiveRequest(prompt=prompt, max_new_tokens=5, emit=c, logprobs=True, top_logprobs=3))
    assert c.done.wait(30)
    with torch.inference_mode():
        logits = model(torch.tensor([prompt + c.tokens[0]])).logits[0]
    logp = torch.log_softmax(logits.float(), -1)
    for step, (token, info) in enumerate(zip(c.tokens[0], c.details[0])):
        row = logp[len(prompt) - 1 + step]
        assert info["logprob"] == pytest.approx(float(row[token]), abs=1e-4)
        assert [t for t, _ in info["top_logprobs"]] == row.topk(3).indices.tolist()
        assert info["top_logprobs"][0][0] == token  # greedy: the chosen token is the most likely


def test_stop_cancels_waiting_and_running_requests(tiny_model, tok):
    model = lively(tiny_model)
    engine = LiveBatcher(model, max_rows=1, eos_ids={-1}, pad_id=tok.pad_token_id)
    thread = threading.Thread(target=engine.serve_forever, daemon=True)
    thread.start()
    collectors = [Collector() for _ in range(3)]
    for c in collectors:
        engine.submit(LiveRequest(prompt=_ids(tok)[0], max_new_tokens=100_000, emit=c))
    while not collectors[0].tokens[0]:
        time.sleep(0.005)
    engine.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert all(c.done.is_set() and c.finish == ["cancelled"] for c in collectors)


def test_bad_requests_are_refused_at_submit(tiny_model, tok):
    engine = LiveBatcher(tiny_model, max_rows=1, eos_ids={-1}, pad_id=tok.pad_token_id)
    with pytest.raises(ValueError, match="at least one token"):
        engine.submit(LiveRequest(prompt=[], max_new_tokens=4, emit=Collector()))
    with pytest.raises(ValueError, match=">= 1"):
        engine.submit(LiveRequest(prompt=[1, 2], max_new_tokens=0, emit=Collector()))


def test_a_seeded_sample_does_not_depend_on_its_batch_neighbours(tiny_model, tok, engine_factory):
    model = lively(tiny_model, scale=0.05)
    engine = engine_factory(model, tok, stop=-1, max_rows=4)
    ids = _ids(tok)
    alone = Collector(n=2)
    engine.submit(LiveRequest(prompt=ids[1], max_new_tokens=8, emit=alone, n=2, temperature=1.0, seed=3))
    assert alone.done.wait(60)
    crowd = [Collector() for _ in range(3)]
    for prompt, c in zip(ids[2:5], crowd):
        engine.submit(LiveRequest(prompt=prompt, max_new_tokens=12, emit=c, temperature=1.0))
    again = Collector(n=2)
    engine.submit(LiveRequest(prompt=ids[1], max_new_tokens=8, emit=again, n=2, temperature=1.0, seed=3))
    assert again.done.wait(60) and all(c.done.wait(60) for c in crowd)
    assert again.tokens == alone.tokens
