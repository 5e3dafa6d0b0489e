"""Seeded batch sampling: a prompt's k-th sample depends on the seed, the prompt and k, never on the
other prompts of the call, their order, the batch size or the chunk it came in (both engines)."""

from __future__ import annotations

import pytest
import torch
from test_continuous import _ids
from tiny import lively

from medtune.infer import continuous, generate_texts
from medtune.infer.static import generate_static


@pytest.fixture()
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _prompts(tok) -> list[str]:
    return [tok.decode(i) for i in _ids(tok)]


ENGINES = [generate_texts, generate_static]  # continuous batching; fixed batches of model.generate


@pytest.mark.parametrize("engine", ENGINES)
def test_seeded_samples_do_not_depend_on_batch_neighbours_or_batch_size(tiny_model, tok, engine):
    model = lively(tiny_model, scale=0.05)  # near-uniform next-token distributions: samples tell seeds apart
    prompts, n = _prompts(tok), 2
    kw = {"max_new_tokens": 8, "temperature": 1.0, "seed": 3, "num_samples": n}
    full = engine(model, tok, prompts, batch_size=4, **kw)
    assert len(full) == len(prompts) * n and len(set(full)) > len(prompts)  # really sampled
    # the first prompts alone, two together, the whole list at other batch sizes
    assert engine(model, tok, prompts[:1], batch_size=4, **kw) == full[:n]
    assert engine(model, tok, prompts[:2], batch_size=4, **kw) == full[: 2 * n]
    assert engine(model, tok, prompts, batch_size=1, **kw) == full
    assert engine(model, tok, prompts, batch_size=len(prompts) * n, **kw) == full
    # a later chunk (eval: every chunk_size items; a resume: only the missing items) and another order
    assert engine(model, tok, prompts[3:], batch_size=4, **kw) == full[3 * n :]
    backwards = engine(model, tok, prompts[::-1], batch_size=3, **kw)
    assert [backwards[(len(prompts) - 1 - i) * n + k] for i in range(len(prompts)) for k in range(n)] == full


@pytest.mark.parametrize("engine", ENGINES)
def test_seeded_samples_repeat_and_change_with_the_seed_and_the_sample(tiny_model, tok, engine):
    model = lively(tiny_model, scale=0.05)
    prompts, n = _prompts(tok)[:3], 3
    kw = {"max_new_tokens": 8, "temperature": 1.0, "num_samples": n, "batch_size": 4}
    a = engine(model, tok, prompts, seed=7, **kw)
    assert a == engine(model, tok, prompts, seed=7, **kw)
    assert a != engine(model, tok, prompts, seed=8, **kw)
    assert all(len(set(a[i * n : (i + 1) * n])) > 1 for i in range(len(prompts)))  # samples of a prompt differ
    # one sample is the first of n: sample k is seeded by (seed, prompt, k), not by n
    assert engine(model, tok, prompts, seed=7, **{**kw, "num_samples": 1}) == a[::n]


@pytest.mark.parametrize("engine", ENGINES)
def test_unseeded_sampling_follows_the_global_generator_and_ignores_neighbours(tiny_model, tok, engine):
    model = lively(tiny_model, scale=0.05)
    prompts = _prompts(tok)[:4]
    kw = {"max_new_tokens": 8, "temperature": 1.0, "num_samples": 2}
    torch.manual_seed(11)
    a = engine(model, tok, prompts, batch_size=4, **kw)
    torch.manual_seed(11)
    b = engine(model, tok, prompts[:1], batch_size=1, **kw)
    assert b == a[:2]
    assert engine(model, tok, prompts, batch_size=4, **kw) != a  # the global generator moved on


@pytest.mark.parametrize("engine", ENGINES)
def test_greedy_decoding_ignores_the_seed_and_leaves_the_global_generator_alone(tiny_model, tok, engine):
    model = lively(tiny_model)
    prompts = _prompts(tok)[:4]
    kw = {"max_new_tokens": 8, "batch_size": 3}
    torch.manual_seed(5)
    state = torch.get_rng_state()
    greedy = engine(model, tok, prompts, seed=1, **kw)
    assert torch.equal(torch.get_rng_state(), state)
    assert engine(model, tok, prompts, seed=2, **kw) == greedy == engine(model, tok, prompts, seed=None, **kw)


def test_generate_texts_takes_the_continuous_path_here(tiny_model):
    """The tests above cover both engines: generate_texts runs continuous batching for the tiny Llama."""
    from medtune.infer import _keeps_last_logits

    assert continuous.supports_continuous(tiny_model) and _keeps_last_logits(tiny_model)


def test_eval_backend_samples_do_not_depend_on_its_batch_size_or_chunk(tiny_model, tok):
    """Self-consistency in eval: a resume with another batch size, or other chunks, samples the same rows."""
    from medtune.data.records import Answer, Record
    from medtune.eval.backends import TransformersBackend

    records = [Record.create(source="synthetic", task="mcq", question=f"Case {i}: fever and dyspnea. Diagnosis?",
                             options=dict(zip("ABCD", ["Pneumonia", "Sepsis", "Asthma", "Stroke"])),
                             answer=Answer(letter="A")) for i in range(5)]
    model = lively(tiny_model, scale=0.05)
    kw = {"max_new_tokens": 6, "temperature": 0.8, "num_samples": 3, "seed": 0}
    whole = TransformersBackend(model, tok, "sections", batch_size=8).generate(records, **kw)
    assert any(len(set(s)) > 1 for s in whole)
    small = TransformersBackend(model, tok, "sections", batch_size=3)
    assert small.generate(records[:2], **kw) + small.generate(records[2:], **kw) == whole
