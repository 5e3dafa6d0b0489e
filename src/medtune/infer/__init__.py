"""Batched generation with transformers (shared by quickstart, eval and serve).

``generate_texts`` runs continuous batching (``continuous.ContinuousBatcher``) for
decoder-only models with full attention in every layer, and fixed left-padded batches of
``model.generate`` (``static.generate_static``) for the others (sliding-window or
recurrent layers, encoder-decoders).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from .continuous import ContinuousBatcher, supports_continuous, token_picker
from .static import generate_static

__all__ = ["generate_texts"]


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
    num_samples: int = 1,
) -> list[str]:
    """Generate ``num_samples`` completions for each already-templated prompt; greedy when temperature == 0.

    Returns a flat list of ``len(prompts) * num_samples`` texts: the samples of prompt ``i``
    are ``out[i * num_samples : (i + 1) * num_samples]`` (with one sample, ``out[i]``).
    ``batch_size`` counts rows decoded together (a prompt's samples are separate rows that
    share one prefill of the prompt). Decoding is exactly greedy, or temperature/top-p
    sampling seeded by ``seed`` (nothing else from the model's generation config: no top-k,
    no repetition penalty); it stops at the generation config's and the tokenizer's
    end-of-sequence tokens.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if not prompts:
        return []
    kwargs = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "num_samples": num_samples}
    stop = eos_ids(model, tokenizer)
    if not supports_continuous(model) or not _keeps_last_logits(model):
        return generate_static(model, tokenizer, prompts, temperature=temperature, top_p=top_p, seed=seed,
                               eos_token_ids=stop, **kwargs)
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    # The chat template already contains any BOS token, so don't add special tokens twice.
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batcher = ContinuousBatcher(model, ids, pick=token_picker(temperature, top_p), eos_ids=stop,
                                pad_id=pad, **kwargs)
    return [tokenizer.decode(t, skip_special_tokens=True).strip() for t in batcher.run()]


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """End-of-sequence ids: the generation config's (an id or a list) and the tokenizer's."""
    found = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(found if isinstance(found, list) else [] if found is None else [found])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _keeps_last_logits(model: Any) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (a PEFT wrapper forwards it to its base model)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters
