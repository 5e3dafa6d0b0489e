"""The llama.cpp slot engine on a tiny GGUF (made by medtune's export code): parallel sequences give the
tokens llama-cpp-python's own Llama gives one at a time; prompt prefixes are reused; option scores are
the model's log-probabilities; a cancelled request frees its slot."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp")

from medtune.infer.live import LiveRequest  # noqa: E402
from medtune.serve.backends.base import Finished, Piece, Prompt, SamplingParams  # noqa: E402

PROMPTS = ["Chest pain?", "A 24-year-old woman has fever, dysuria and flank pain. Next test?", "Headache.",
           "A child with a barking cough and inspiratory stridor. Treatment?"]


@pytest.fixture(scope="module")
def tiny_gguf(tiny_model_dir, tmp_path_factory):
    from tiny import lively
    from transformers import AutoModelForCausalLM

    from medtune.export.gguf import convert_hf_to_gguf

    folder = tmp_path_factory.mktemp("tiny_lively")
    model = lively(AutoModelForCausalLM.from_pretrained(tiny_model_dir), scale=0.3)
    model.save_pretrained(folder)
    for f in tiny_model_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "generation_config", "chat_template")):
            (folder / f.name).write_bytes(f.read_bytes())
    out = folder / "tiny-f32.gguf"
    convert_hf_to_gguf(folder, out, "f32")
    return out


@pytest.fixture()
def backend(tiny_gguf):
    from medtune.serve.backends.llamacpp import LlamaCppBackend

    b = LlamaCppBackend(tiny_gguf, served_name="tiny", slots=4, context_length=512, threads=1, reasoning_format="sections")
    yield b
    asyncio.run(b.close())
    b.engine.close()


async def _generate(backend, prompts, max_tokens=12, **kw):
    await backend.start()

    async def one(p):
        text, finish = "", None
        async for e in backend.stream(backend.prepare(Prompt(messages=[{"role": "user", "content": p}])),
                                      SamplingParams(max_tokens=max_tokens, **kw)):
            if isinstance(e, Piece):
                text += e.text
            elif isinstance(e, Finished):
                finish = e
        return text, finish

    return await asyncio.gather(*(one(p) for p in prompts))


def test_parallel_slots_match_llama_one_at_a_time(backend, tiny_gguf):
    got = asyncio.run(_generate(backend, PROMPTS))
    llm = llama_cpp.Llama(model_path=str(tiny_gguf), n_ctx=512, n_threads=1, verbose=False)
    for prompt, (text, finish) in zip(PROMPTS, got):
        ids = backend.prepare(Prompt(messages=[{"role": "user", "content": prompt}])).tokens
        ref: list[int] = []
        for token in llm.generate(ids, top_k=1, temp=0.0, reset=True):  # llama-cpp-python's own greedy loop
            if llm.token_eos() == token or len(ref) == 12:
                break
            ref.append(token)
        assert text == b"".join(backend.engine.piece(t) for t in ref).decode("utf-8", "replace"), prompt
        assert finish.completion_tokens == len(ref)


def test_repeated_prompt_reuses_the_slot_cache(backend):
    fed: list[int] = []
    decode = backend.engine._lib.llama_decode

    def counting(ctx, batch):
        fed.append(batch.n_tokens)
        return decode(ctx, batch)

    backend.engine._lib = type("Lib", (), {"__getattr__": lambda _s, n: getattr(llama_cpp, n),
                                            "llama_decode": staticmethod(counting)})()
    first = asyncio.run(_generate(backend, PROMPTS[1:2], max_tokens=4))
    prompt_len = backend.prepare(Prompt(messages=[{"role": "user", "content": PROMPTS[1]}])).n_tokens
    assert fed[0] == prompt_len  # the whole prompt, once
    fed.clear()
    again = asyncio.run(_generate(backend, PROMPTS[1:2], max_tokens=4))
    assert fed[0] == 1 and again == first  # only the last prompt token is evaluated again


def test_option_scores_are_the_models_log_probabilities(backend, tiny_gguf):
    context = backend.render(Prompt(messages=[{"role": "user", "content": "Chest pain? A. MI B. PE"}])) + "The answer is ("
    asyncio.run(backend.start())
    scores = asyncio.run(backend.score_options(context, ["A", "B", "pneumothorax"]))
    llm = llama_cpp.Llama(model_path=str(tiny_gguf), n_ctx=512, n_threads=1, verbose=False, logits_all=True)
    for option, score in zip(["A", "B", "pneumothorax"], scores):
        ctx_ids = llm.tokenize(context.encode(), add_bos=False, special=True)
        ids = llm.tokenize((context + option).encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        logits = np.array(llm.scores[: len(ids)])
        logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
        expected = sum(logp[i - 1, ids[i]] for i in range(len(ctx_ids), len(ids)))
        assert score == pytest.approx(expected, abs=1e-3), option


def test_cancel_frees_the_slot(backend):
    engine = backend.engine
    thread = threading.Thread(target=engine.serve_forever, daemon=True)
    thread.start()
    done = threading.Event()
    reasons: list[str] = []
    tokens = backend.prepare(Prompt(messages=[{"role": "user", "content": "Chest pain?"}])).tokens
    request = LiveRequest(prompt=tokens, max_new_tokens=400, emit=lambda s, t, i: (reasons.append(i["finish_reason"]),
                                                                                      done.set()) if t is None else None)
    engine.submit(request)
    request.cancel()
    assert done.wait(10) and reasons == ["cancelled"]
    assert engine.load == 0
    engine.stop()
    thread.join(10)


def test_serving_leaves_the_torch_threads_of_the_process_alone(tiny_gguf):
    """The engine thread decodes with one torch thread; the thread that built, started and closed the backend keeps
    its own count (it was left at 1 for good on the thread that built the backend)."""
    import torch

    from medtune.serve.backends.llamacpp import LlamaCppBackend

    before = torch.get_num_threads()
    b = LlamaCppBackend(tiny_gguf, served_name="tiny", slots=2, context_length=512, threads=1, reasoning_format="plain")
    assert torch.get_num_threads() == before
    (text, _), = asyncio.run(_generate(b, ["chest pain"], max_tokens=4))
    asyncio.run(b.close())
    b.engine.close()
    assert torch.get_num_threads() == before


def test_a_medtune_gguf_carries_the_system_prompt_its_run_trained_with(tiny_gguf, backend):
    """Export writes the run's system prompt into the GGUF (``medtune.system_prompt``, beside its reasoning
    format), so /v1/analyze_case asks the file as eval asks the run; a GGUF without it has none."""
    from medtune.export.common import Provenance
    from medtune.export.gguf import convert_hf_to_gguf
    from medtune.serve.backends.llamacpp import LlamaCppBackend

    assert backend.trained_system_prompt is None
    out = tiny_gguf.parent / "tiny-trained-f32.gguf"
    convert_hf_to_gguf(tiny_gguf.parent, out, "f32",
                       provenance=Provenance(reasoning_format="plain", system_prompt="You are MedBot."))
    b = LlamaCppBackend(out, served_name="tiny", slots=1, context_length=256, threads=1, reasoning_format="auto")
    from medtune.eval.identity import describe_model

    assert describe_model(str(out), backend="llamacpp").system_prompt == "You are MedBot."  # eval reads the same key
    assert describe_model(str(tiny_gguf), backend="llamacpp").system_prompt is None
    try:
        assert (b.trained_system_prompt, b.reasoning_format) == ("You are MedBot.", "plain")
    finally:
        asyncio.run(b.close())
        b.engine.close()
