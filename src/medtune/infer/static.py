"""Static batches through ``model.generate`` (left-padded): the path for models continuous batching does not cover.

Also the per-sample seeding rule shared with continuous batching (``sample_generators``): with
temperature > 0, sample ``k`` of a prompt draws from its own random generator seeded from
``(seed, the prompt's text, k)``, so it does not depend on the other prompts of the call, their
order, the batch size or the chunk it came in. ``generate`` has no per-row generator, so sampled
rows are chosen by a logits processor (``live.sample_rows``, the server's sampling function) and
``generate`` runs greedy over its one-hot scores; greedy decoding is plain ``generate``.
"""

from __future__ import annotations

import hashlib
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
    end-of-sequence ids when given. Sample ``k`` of a prompt uses its own generator seeded from
    ``(seed, prompt, k)`` (``sample_generators``): the same whatever the batch it is decoded in.

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
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * (len(prompts) * n)
    device = next(model.parameters()).device
    sample = temperature > 0
    generators = sample_generators(prompts, n, seed, device) if sample else []
    # Sampling is done by a logits processor, one generator per row, over which generate runs greedy:
    # generate's own sampling would draw every row from one generator, so a row would depend on its batch.
    # Each extra a checkpoint's generation_config may set is neutralised by name: generate fills whatever a call leaves
    # unset from the model's config (a config passed whole too), and the continuous path applies none of them.
    gen_kwargs = {
        "max_new_tokens": max_new_tokens, "do_sample": False, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
        "num_beams": 1, "min_length": 0, "min_new_tokens": 0,
        "temperature": None, "top_p": None, "top_k": None, "pad_token_id": tokenizer.pad_token_id,
    }
    if eos_token_ids:
        gen_kwargs["eos_token_id"] = sorted(eos_token_ids)
    per_batch = batch_size if n == 1 else max(1, batch_size // n)
    try:
        for start in range(0, len(order), per_batch):
            idx = order[start : start + per_batch]
            # The chat template already contains any BOS token, so don't add special tokens twice.
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            batch_kwargs = gen_kwargs
            if sample:  # the batch's rows: prompt idx[r]'s samples at rows r * n .. r * n + n - 1
                rows = [generators[i * n + k] for i in idx for k in range(n)]
                batch_kwargs = {**gen_kwargs, "logits_processor": _row_sampler(temperature, top_p, rows)}
            with torch.inference_mode():
                if n == 1:
                    gen = model.generate(**enc, **batch_kwargs)
                else:
                    gen = _generate_shared_prefill(model, enc["input_ids"], enc["attention_mask"], n, batch_kwargs)
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


def sample_seed(seed: int, prompt: str, sample: int) -> int:
    """The seed of sample ``sample`` of ``prompt``: a hash of the three (63 bits), so distinct prompts
    draw independent streams and a prompt's draws depend on nothing else in the call."""
    digest = hashlib.sha256(f"{seed}\0{sample}\0{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def sample_generators(prompts: Sequence[str], num_samples: int, seed: int | None, device: Any) -> list[Any]:
    """One seeded ``torch.Generator`` (on ``device``) per sample, prompt ``i``'s sample ``k`` at
    ``i * num_samples + k``, seeded ``sample_seed(seed, prompt, k)``. Without a seed, the base seed is
    drawn once from torch's global generator (so ``torch.manual_seed`` before the call repeats it)."""
    import torch

    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    out = []
    for prompt in prompts:
        for k in range(num_samples):
            g = torch.Generator(device=device)
            g.manual_seed(sample_seed(seed, prompt, k))
            out.append(g)
    return out


def _row_sampler(temperature: float, top_p: float, generators: list[Any]) -> Any:
    """A ``LogitsProcessorList`` that samples row ``r`` with ``generators[r]`` (``live.sample_rows``) and
    returns scores that are 0 at the chosen token and -inf elsewhere, for ``generate`` to take greedily."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    from .live import sample_rows

    settings = [(temperature, top_p, g) for g in generators]

    class RowSampler(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            if scores.shape[0] != len(settings):
                raise RuntimeError(f"{scores.shape[0]} rows of scores for {len(settings)} generators")
            chosen = sample_rows(scores, settings)
            out = torch.full_like(scores, float("-inf"))
            return out.scatter_(1, chosen[:, None], 0.0)

    return LogitsProcessorList([RowSampler()])
