"""Batched, left-padded generation with transformers (shared by quickstart, eval and serve)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
) -> list[str]:
    """Generate a completion for each already-templated prompt; greedy when temperature == 0.

    Prompts are sorted by length and batched with left padding so that every row's last
    prompt token sits at the same position (required for correct decoder-only batching).
    """
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    sample = temperature > 0
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            # The chat template already contains any BOS token, so don't add special tokens twice.
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.inference_mode():
                gen = model.generate(
                    **enc, max_new_tokens=max_new_tokens, do_sample=sample,
                    temperature=temperature if sample else None, top_p=top_p if sample else None,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            for row, i in enumerate(idx):
                out[i] = tokenizer.decode(new[row], skip_special_tokens=True).strip()
    finally:
        tokenizer.padding_side = side
    return out
