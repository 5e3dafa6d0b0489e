"""Self-consistency sampling shares the prompt prefill: one prompt forward per distinct prompt, same outputs."""

from __future__ import annotations

import os

import pytest
from evalkit import make_mcq
from tiny import lively

from medtune.eval.backends import TransformersBackend
from medtune.infer import generate_texts
from medtune.infer.static import _generate_shared_prefill

QUESTIONS = [
    "Chest pain?",
    "A 58-year-old man presents with crushing chest pain radiating to the left arm and diaphoresis. Diagnosis?",
    "A 24-year-old woman has fever, dysuria and flank pain. Next test?",
]


@pytest.fixture()
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture()
def lively_model(tiny_model):
    return lively(tiny_model)


def _prompts(tok) -> list[str]:
    return [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
            for q in QUESTIONS]


def _encode(tok, prompts):
    tok.padding_side = "left"
    return tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)


@pytest.mark.parametrize(("plain_bs", "shared_bs"), [(3, 9), (1, 3)])  # one padded batch; one prompt per batch
def test_greedy_samples_equal_plain_greedy(lively_model, tok, plain_bs, shared_bs):
    prompts = _prompts(tok)
    lengths = {len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts}
    assert len(lengths) == len(prompts)  # different lengths: left padding is exercised
    plain = generate_texts(lively_model, tok, prompts, max_new_tokens=12, batch_size=plain_bs)
    shared = generate_texts(lively_model, tok, prompts, max_new_tokens=12, batch_size=shared_bs, num_samples=3)
    assert all(plain) and len(set(plain)) == len(plain)
    assert shared == [t for t in plain for _ in range(3)]


def test_shared_prefill_token_ids_match_plain_generate(lively_model, tok):
    import torch

    enc = _encode(tok, _prompts(tok))
    kw = {"max_new_tokens": 10, "do_sample": False, "pad_token_id": tok.pad_token_id}
    with torch.inference_mode():
        plain = lively_model.generate(**enc, **kw)
        shared = _generate_shared_prefill(lively_model, enc["input_ids"], enc["attention_mask"], 2, kw)
    assert torch.equal(shared, plain.repeat_interleave(2, dim=0))


def test_prompt_is_prefilled_once_not_per_sample(tiny_model, tok):
    prompts, n = _prompts(tok), 4
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    prefix = len(os.path.commonprefix(ids))
    width = max(len(i) for i in ids) - prefix  # the suffixes are prefilled left-padded to the longest
    shapes: list[tuple[int, ...]] = []
    hook = tiny_model.register_forward_pre_hook(
        lambda _m, _args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    try:
        generate_texts(tiny_model, tok, prompts, max_new_tokens=3, batch_size=len(prompts) * n, num_samples=n)
        shared_shapes = list(shapes)
        shapes.clear()
        # the old way: every sample is its own prompt, so every sample pays the whole prompt
        generate_texts(tiny_model, tok, [p for p in prompts for _ in range(n)], max_new_tokens=3,
                       batch_size=len(prompts) * n)
        repeated_shapes = list(shapes)
    finally:
        hook.remove()
    # the shared prefix (system turn) once, then each distinct prompt's suffix once, then one token per row per step
    assert shared_shapes[:2] == [(1, prefix), (len(prompts), width)]
    assert 1 <= len(shared_shapes[2:]) <= 2 and all(s == (len(prompts) * n, 1) for s in shared_shapes[2:])
    assert repeated_shapes[:2] == [(1, prefix), (len(prompts) * n, width)]  # the prompt tokens processed n times


def test_seeded_sampling_is_reproducible_and_samples_differ(tiny_model, tok):
    prompts, n = _prompts(tok), 3
    kw = {"max_new_tokens": 8, "temperature": 1.0, "num_samples": n, "seed": 7, "batch_size": 6}
    a = generate_texts(tiny_model, tok, prompts, **kw)
    b = generate_texts(tiny_model, tok, prompts, **kw)
    assert len(a) == len(prompts) * n and a == b
    assert any(len(set(a[i * n : (i + 1) * n])) > 1 for i in range(len(prompts)))
    assert a != generate_texts(tiny_model, tok, prompts, **{**kw, "seed": 8})


def test_transformers_backend_samples_share_one_prompt_per_record(lively_model, tok):
    backend = TransformersBackend(lively_model, tok, "sections", batch_size=8)
    records = make_mcq(3)
    one = backend.generate(records, max_new_tokens=6)
    three = backend.generate(records, max_new_tokens=6, num_samples=3)
    assert all(s[0] for s in one) and [len(s) for s in three] == [3, 3, 3]
    assert three == [[s[0]] * 3 for s in one]
