"""Static batches through ``model.generate`` (left-padded): the path for models continuous batching does not cover."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any


def generate_static(
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
    eos_token_ids: set[int] | None = None,
) -> list[str]:
    """``generate_texts`` by fixed batches of ``model.generate``; same arguments and output layout.

    Decoding is the protocol's only: greedy, or temperature/top-p sampling with the model's
    own top-k and repetition penalty switched off; ``eos_token_ids`` replaces the model's
    end-of-sequence ids when given.

    Prompts are sorted by length and batched with left padding so that every row's last
    prompt token sits at the same position (required for correct decoder-only batching).

    Returns a flat list of ``len(prompts) * num_samples`` texts: the samples of prompt ``i``
    are ``out[i * num_samples : (i + 1) * num_samples]`` (with one sample, ``out[i]``).

    ``batch_size`` counts generated rows, i.e. sequences decoded together: with
    ``num_samples = n`` a batch holds ``max(1, batch_size // n)`` distinct prompts (so
    ``n * that`` rows; more than ``batch_size`` only when ``n > batch_size``).

    With ``num_samples > 1`` each batch of distinct prompts is prefilled once and its KV
    cache is shared by the samples (see ``_generate_shared_prefill``), instead of every
    sample paying its own prompt prefill. ``num_return_sequences`` would not do that:
    ``generate`` expands the inputs before the prefill.
    """
    import torch

    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    n = num_samples
    if seed is not None:
        torch.manual_seed(seed)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * (len(prompts) * n)
    device = next(model.parameters()).device
    sample = temperature > 0
    gen_kwargs = {
        "max_new_tokens": max_new_tokens, "do_sample": sample, "repetition_penalty": 1.0,
        "temperature": temperature if sample else None, "top_p": top_p if sample else None,
        "top_k": 0 if sample else None, "pad_token_id": tokenizer.pad_token_id,
    }
    if eos_token_ids:
        gen_kwargs["eos_token_id"] = sorted(eos_token_ids)
    per_batch = batch_size if n == 1 else max(1, batch_size // n)
    try:
        for start in range(0, len(order), per_batch):
            idx = order[start : start + per_batch]
            # The chat template already contains any BOS token, so don't add special tokens twice.
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.inference_mode():
                if n == 1:
                    gen = model.generate(**enc, **gen_kwargs)
                else:
                    gen = _generate_shared_prefill(model, enc["input_ids"], enc["attention_mask"], n, gen_kwargs)
            new = gen[:, enc["input_ids"].shape[1] :]
            for row, i in enumerate(idx):
                for k in range(n):
                    out[i * n + k] = tokenizer.decode(new[row * n + k], skip_special_tokens=True).strip()
    finally:
        tokenizer.padding_side = side
    return out


def _generate_shared_prefill(model: Any, input_ids: Any, attention_mask: Any, num_samples: int,
                             gen_kwargs: dict[str, Any]) -> Any:
    """``model.generate`` of ``num_samples`` rows per left-padded prompt row, prefilling each prompt once.

    One forward pass over the prompts minus their last token fills a KV cache; the cache is
    repeated ``num_samples`` times along the batch (``Cache.batch_repeat_interleave``) and
    handed to ``generate`` with the full, repeated prompts. ``generate`` sees a cache of
    ``L - 1`` tokens for inputs of ``L`` tokens, so its own prefill runs only the last prompt
    token (transformers 5.x: ``_prefill`` slices ``input_ids[:, -(L - past_length):]``), then
    decodes as usual; it rebuilds the position ids from the full attention mask, which match
    the ones passed here. Returns the generated ids of shape ``(rows * num_samples, L + new)``,
    samples of prompt row ``r`` at rows ``r * num_samples .. (r + 1) * num_samples - 1``.
    """
    ids = input_ids.repeat_interleave(num_samples, dim=0)
    mask = attention_mask.repeat_interleave(num_samples, dim=0)
    if input_ids.shape[1] < 2:  # a one-token prompt: nothing to share
        return model.generate(input_ids=ids, attention_mask=mask, **gen_kwargs)
    prefix_ids, prefix_mask = input_ids[:, :-1], attention_mask[:, :-1]
    # Exactly as generate derives positions for left padding (GenerationMixin._prepare_position_ids_for_generation).
    position_ids = (prefix_mask.long().cumsum(-1) - 1).masked_fill(prefix_mask == 0, 0)
    extra = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    cache = model(input_ids=prefix_ids, attention_mask=prefix_mask, position_ids=position_ids,
                  use_cache=True, **extra).past_key_values
    if cache is None or not hasattr(cache, "batch_repeat_interleave"):  # a model without a Cache object
        return model.generate(input_ids=ids, attention_mask=mask, **gen_kwargs)
    cache.batch_repeat_interleave(num_samples)
    return model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache, **gen_kwargs)
