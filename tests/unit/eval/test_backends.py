"""The endpoint and llama.cpp backends speak the same chat messages and feed the same cot pipeline."""

from __future__ import annotations

import json

import httpx
import pytest
from evalkit import make_mcq

from medtune.eval.backends import BackendError, LlamaCppBackend, OpenAIBackend, build_backend
from medtune.eval.benchmarks import BenchmarkSpec
from medtune.eval.evaluate import evaluate


def _fake_endpoint(seen: list[dict]) -> httpx.MockTransport:
    """An OpenAI-compatible /v1/chat/completions that answers with the gold letter of Case 0 and hedges otherwise."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        user = body["messages"][-1]["content"]
        text = "## Thinking\nA or B?\n## Final Response\nThe answer is (A)." if user.startswith("Case 0:") else "Answer: B or C"
        if user.startswith("Chest pain"):
            text = "## Thinking\nACS.\n## Final Response\nGive aspirin and call cardiology now."
        choices = [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"} for i in range(body.get("n", 1))]
        return httpx.Response(200, json={"id": "x", "object": "chat.completion", "created": 0, "model": body["model"], "choices": choices})

    return httpx.MockTransport(handler)


def test_openai_backend_runs_cot_through_the_real_client(tmp_path):
    from openai import OpenAI

    seen: list[dict] = []
    client = OpenAI(base_url="http://test/v1", api_key="k", http_client=httpx.Client(transport=_fake_endpoint(seen)))
    backend = OpenAIBackend("http://test/v1", "medtune-model", "sections", client=client)
    records = make_mcq(2)  # Case 0 has gold A
    summary = evaluate(backend, BenchmarkSpec(name="t", files="-"), records, tmp_path, protocol="cot",
                       num_samples=2, temperature=0.7, write_report=False)
    assert seen[0]["model"] == "medtune-model" and seen[0]["n"] == 2 and seen[0]["messages"][-1]["role"] == "user"
    assert seen[0]["top_p"] == 1.0  # the fingerprint's full distribution, whatever the server's default
    assert "Answer with the letter" in seen[0]["messages"][-1]["content"]
    assert summary["accuracy"]["correct"] == 1 and summary["unparseable_by_status"]["conflicting"] == 1


def test_endpoint_and_gguf_backends_refuse_loglik():
    with pytest.raises(BackendError, match="cot protocol only"):
        OpenAIBackend("http://x/v1", "m", client=object()).score_choices([("q", [" A"])])
    with pytest.raises(BackendError, match="needs --endpoint"):
        build_backend("m", backend="openai")
    with pytest.raises(BackendError, match="GGUF file not found"):
        LlamaCppBackend("/nonexistent/model.gguf")


def test_llamacpp_backend_samples_the_full_distribution(tmp_path, monkeypatch):
    """The fingerprint records top_p 1.0 for every backend: llama-cpp-python's own defaults (top_k 40, top_p 0.95,
    min_p 0.05) must not cut the distribution it samples from, and no repeat penalty bends it (greedy included)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    calls: list[dict] = []

    class RecordingLlama:
        def __init__(self, **kwargs):
            pass

        def create_chat_completion(self, **kwargs):
            calls.append(kwargs)
            return {"choices": [{"message": {"content": "The answer is (A)."}}]}

    monkeypatch.setattr(llama_cpp, "Llama", RecordingLlama)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    backend = LlamaCppBackend(gguf, "sections")
    backend.generate(make_mcq(1), max_new_tokens=8, temperature=0.7, num_samples=2, seed=3)
    backend.generate(make_mcq(1), max_new_tokens=8)
    for kw in calls:
        assert kw["top_p"] == 1.0 and kw["min_p"] == 0.0 and kw["top_k"] <= 0  # llama.cpp: top_k <= 0 is off
        assert kw["repeat_penalty"] == 1.0 and kw.get("typical_p", 1.0) == 1.0 and not kw.get("mirostat_mode")
    assert [(kw["temperature"], kw["seed"]) for kw in calls] == [(0.7, 3), (0.7, 4), (0.0, 0)]  # greedy stays greedy


@pytest.mark.slow
def test_llamacpp_backend_generates_from_the_embedded_gguf(tmp_path):
    from medtune.models.embedded import embedded_gguf_path

    backend = LlamaCppBackend(embedded_gguf_path(), "sections", n_threads=1)
    outs = backend.generate(make_mcq(2), max_new_tokens=12)
    assert len(outs) == 2 and all(len(o) == 1 and isinstance(o[0], str) and o[0] for o in outs)
    # greedy is deterministic: the same prompt gives the same text
    assert backend.generate(make_mcq(1), max_new_tokens=12)[0] == outs[0]


def test_open_ended_items_get_rouge_l(tmp_path):
    from openai import OpenAI

    from medtune.data.records import Answer, Record

    client = OpenAI(base_url="http://test/v1", api_key="k", http_client=httpx.Client(transport=_fake_endpoint([])))
    backend = OpenAIBackend("http://test/v1", "m", "sections", client=client)
    open_item = Record.create(source="t", task="management", question="Chest pain, ST elevation: first step?",
                              answer=Answer(text="Give aspirin and call cardiology."))
    summary = evaluate(backend, BenchmarkSpec(name="t", files="-"), [*make_mcq(2), open_item], tmp_path, protocol="cot")
    assert summary["accuracy"]["n"] == 2  # the open item is not in the accuracy
    assert 0.7 < summary["open_ended"]["rougeL_f1"] < 1.0
    assert "ROUGE-L" in (tmp_path / "report.md").read_text()
