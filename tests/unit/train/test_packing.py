"""Packing must be invisible to the model: a packed row computes what separate rows compute."""

from __future__ import annotations

import pytest
import torch

from medtune.data.records import Answer, Record
from medtune.data.render import render_example
from medtune.train.packing import (
    collate_packed,
    collate_padded,
    make_batches,
    pack_best_fit,
    trainable_tokens,
)
from medtune.train.sft import loss_sum


def examples(tok, n=3):
    out = []
    for i in range(n):
        rec = Record.create(source="t", task="mcq", question=f"Case {i}: chest pain " + "and fever " * i + "?",
                            options={"A": "MI", "B": "GERD"}, answer=Answer(letter="A"), reasoning="Ischemia. " * (i + 1))
        out.append(render_example(tok, rec, "sections", max_length=512))
    return out


def test_best_fit_respects_capacity_and_uses_every_sample_once():
    lengths = [7, 3, 9, 1, 4, 4, 8, 2, 6]
    bins = pack_best_fit(lengths, capacity=10)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins)
    assert len(bins) == 5  # 44 tokens need at least 5 bins of 10
    with pytest.raises(ValueError, match="more than the pack capacity"):
        pack_best_fit([11], capacity=10)


def test_packed_row_matches_separate_forward_passes(tiny_model, tiny_tokenizer):
    """transformers builds a block-diagonal mask from restarting position_ids: no cross-sample attention."""
    tiny_model.eval()
    exs = examples(tiny_tokenizer)
    packed = collate_packed(exs)
    with torch.no_grad():
        logits = tiny_model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits[0]
        start = 0
        for ex in exs:
            alone = tiny_model(input_ids=torch.tensor([ex.input_ids])).logits[0]
            torch.testing.assert_close(logits[start : start + len(ex)], alone, atol=1e-5, rtol=1e-4)
            start += len(ex)


def test_packed_and_padded_losses_agree_and_count_only_trainable_tokens(tiny_model, tiny_tokenizer):
    tiny_model.eval()
    exs = examples(tiny_tokenizer)
    with torch.no_grad():
        packed = loss_sum(tiny_model, collate_packed(exs))
        padded = loss_sum(tiny_model, collate_padded(exs, tiny_tokenizer.pad_token_id))
        # Reference: transformers' own shifted mean loss, per sample, times its token count.
        ref = sum(tiny_model(input_ids=torch.tensor([e.input_ids]), labels=torch.tensor([e.labels])).loss * (e.n_trainable)
                  for e in exs)
    assert trainable_tokens(exs, range(len(exs))) == sum(e.n_trainable for e in exs)
    torch.testing.assert_close(packed, padded, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(packed, ref, atol=1e-4, rtol=1e-5)


def test_make_batches_without_packing_groups_similar_lengths(tiny_tokenizer):
    exs = examples(tiny_tokenizer, n=6)
    batches = make_batches(exs, packing=False, batch_size=2, max_length=512)
    assert [len(b) for b in batches] == [2, 2, 2]
    lens = [len(exs[i]) for b in batches for i in b]
    assert lens == sorted(lens)
    packs = make_batches(exs, packing=True, batch_size=2, max_length=512)
    assert len(packs) < len(batches) and all(sum(len(exs[i]) for i in b) <= 1024 for b in packs)
