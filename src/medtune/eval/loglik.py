"""Log-likelihood scoring of answer choices with a transformers causal LM.

The protocol is lm-evaluation-harness's ``multiple_choice``: for each item the context
(``Question: ...\\nAnswer:``) is followed by each choice's continuation (``" A"``,
``" yes"``); the prediction is the argmax of the summed continuation log-probability
(``acc``) or of that sum divided by the continuation's length in characters
(``acc_norm``, the harness's byte-length normalisation for ASCII choices).

Tokenisation follows the harness: the context and context+continuation are encoded
separately and the continuation tokens are the tail of the joint encoding, so a
leading space merges with the letter exactly as it would in running text.

Speed on CPU comes from sharing the prefix: when every choice of an item is a single
token (true for " A".." D" and " yes"/" no"/" maybe" with SmolLM2's and Llama's
tokenizers) the item needs ONE forward pass over its context, and all choices are read
from the last position's distribution. Items whose choices span several tokens fall
back to one row per choice (context + continuation), still batched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class ChoiceScores:
    """Per-item result: summed log-probs, their length-normalised form, and the token counts."""

    logprobs: list[float]
    norm_logprobs: list[float]
    num_tokens: list[int]

    @property
    def probs(self) -> list[float]:
        """Softmax over the choices' summed log-probs: the model's option probabilities (for calibration)."""
        m = max(self.logprobs)
        exps = [math.exp(x - m) for x in self.logprobs]
        total = sum(exps)
        return [e / total for e in exps]


def _encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Harness-style split: trailing context whitespace moves into the continuation."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    if len(whole) <= len(ctx):  # the choice merged into the context's last token: it would score 0.0 and always win
        raise ValueError(f"choice {continuation!r} adds no token after the context (...{context[-40:]!r}) with this "
                         "tokenizer: loglik cannot score it; use the cot protocol or another prompt style")
    return whole[: len(ctx)], whole[len(ctx) :]


def score_choices(
    model: Any,
    tokenizer: Any,
    requests: Sequence[tuple[str, Sequence[str]]],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
) -> list[ChoiceScores]:
    """Score every (context, continuations) request; returns one ChoiceScores per request.

    Contexts longer than ``max_length`` (default: the model's maximum positions) are
    truncated from the left, as the harness does, so the answer cue is always kept.
    """
    max_length = max_length or int(getattr(model.config, "max_position_embeddings", 2048))
    single: list[tuple[int, list[int], list[int]]] = []  # (request index, context ids, one id per choice)
    multi: list[tuple[int, int, list[int], list[int]]] = []  # (request, choice, context ids, cont ids)
    lengths: dict[int, list[int]] = {}
    for i, (context, conts) in enumerate(requests):
        pairs = [_encode_pair(tokenizer, context, c) for c in conts]
        lengths[i] = [len(c) for c in conts]
        ctx_ids = pairs[0][0]
        if all(len(p[1]) == 1 and p[0] == ctx_ids for p in pairs):
            single.append((i, ctx_ids[-(max_length - 1) :], [p[1][0] for p in pairs]))
        else:
            for j, (ctx, cont) in enumerate(pairs):
                multi.append((i, j, ctx[-(max_length - len(cont)) :], cont))
    sums: dict[int, list[float]] = {i: [0.0] * len(c) for i, (_, c) in enumerate(requests)}
    ntok: dict[int, list[int]] = {i: [0] * len(c) for i, (_, c) in enumerate(requests)}
    _score_single(model, single, batch_size, sums, ntok)
    _score_multi(model, multi, batch_size, sums, ntok)
    out = []
    for i in range(len(requests)):
        norm = [s / max(n, 1) for s, n in zip(sums[i], lengths[i])]
        out.append(ChoiceScores(logprobs=sums[i], norm_logprobs=norm, num_tokens=ntok[i]))
    return out


def _right_padded(rows: list[list[int]], pad_id: int):
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, r in enumerate(rows):
        ids[k, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[k, : len(r)] = 1
    return ids, mask


def _float32_head(model: Any) -> tuple[Any, Any] | None:
    """(decoder, LM head) of a model whose head computes in less than float32, else None.

    A bf16 model's logits leave its head in bf16: 8 bits of mantissa, steps of 0.0625-0.125 at the size of a
    vocabulary's logits, so options a few hundredths apart tie exactly and the argmax takes the first
    letter (41 of 88 dev-vignette items of the base model tied for the top in bf16). Reading the
    decoder's last hidden state and applying the head's weights in float32 keeps the order the model
    computed. Only for a plain linear head over the decoder's output: a head with soft-capping or a
    logit scale (Gemma 2, Cohere), or quantized weights, keeps the model's own forward.
    """
    import torch

    head = model.get_output_embeddings()
    weight = getattr(head, "weight", None)
    cfg = model.config
    if (not isinstance(head, torch.nn.Linear) or weight is None or not weight.is_floating_point()
            or weight.dtype == torch.float32 or getattr(cfg, "final_logit_softcapping", None)
            or getattr(cfg, "logit_scale", None) not in (None, 1, 1.0)):
        return None
    return model.get_decoder(), head


def _logprobs(model: Any, ids: Any, mask: Any, positions: Any = None, last_only: bool = False):
    """Log-softmax over the vocabulary (batch, width, vocab), or of the last column only (batch, vocab)."""
    import torch

    device = next(model.parameters()).device
    kwargs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    if positions is not None:
        kwargs["position_ids"] = positions.to(device)
    fp32 = _float32_head(model)
    with torch.inference_mode():
        if fp32 is None:
            logits = model(**kwargs, logits_to_keep=1 if last_only else 0).logits
            logits = logits[:, -1] if last_only else logits
        else:
            decoder, head = fp32
            hidden = decoder(**kwargs).last_hidden_state
            hidden = hidden[:, -1] if last_only else hidden
            bias = head.bias.float() if head.bias is not None else None
            logits = torch.nn.functional.linear(hidden.float(), head.weight.float(), bias)
    return torch.log_softmax(logits.float(), dim=-1)


def _forward_logprobs(model: Any, rows: list[list[int]]):
    """Log-softmax over the vocabulary for a right-padded batch: shape (batch, width, vocab)."""
    pad = getattr(model.config, "pad_token_id", None) or 0
    ids, mask = _right_padded(rows, pad)
    return _logprobs(model, ids, mask)


def _last_position_logprobs(model: Any, rows: list[list[int]]):
    """Log-softmax of the next-token distribution after each row: shape (batch, vocab).

    Rows are LEFT-padded so every row ends in the last column, and only that column goes
    through the LM head (``logits_to_keep=1``): the head over a 49k vocabulary at every
    position would cost ~20% of the forward and hundreds of MB for nothing.
    """
    import torch

    pad = getattr(model.config, "pad_token_id", None) or 0
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, r in enumerate(rows):
        ids[k, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        mask[k, width - len(r) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # real tokens keep positions 0..n-1 despite the padding
    return _logprobs(model, ids, mask, positions, last_only=True)


def _score_single(model: Any, items: list, batch_size: int, sums: dict, ntok: dict) -> None:
    """One forward per item; every choice read from the distribution after the last context token."""
    items = sorted(items, key=lambda x: len(x[1]))  # similar lengths per batch -> little padding
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        logp = _last_position_logprobs(model, [ctx for _, ctx, _ in batch])
        for row, (i, _ctx, choice_ids) in enumerate(batch):
            sums[i] = [float(logp[row, t]) for t in choice_ids]
            ntok[i] = [1] * len(choice_ids)


def _score_multi(model: Any, rows: list, batch_size: int, sums: dict, ntok: dict) -> None:
    """One row per (item, choice): the continuation's tokens are scored by teacher forcing."""
    rows = sorted(rows, key=lambda x: len(x[2]) + len(x[3]))
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        # The last continuation token is predicted, never fed, so drop it from the input.
        logp = _forward_logprobs(model, [(ctx + cont)[:-1] for _, _, ctx, cont in batch])
        for row, (i, j, ctx, cont) in enumerate(batch):
            positions = range(len(ctx) - 1, len(ctx) - 1 + len(cont))
            sums[i][j] = float(sum(logp[row, p, t] for p, t in zip(positions, cont)))
            ntok[i][j] = len(cont)
