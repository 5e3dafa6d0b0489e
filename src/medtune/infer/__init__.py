"""Batched generation with transformers (shared by quickstart, eval and serve).

``generate_texts`` runs continuous batching (``continuous.ContinuousBatcher``) for
decoder-only models with full attention in every layer, and fixed left-padded batches of
``model.generate`` (``static.generate_static``) for the others (sliding-window or
recurrent layers, encoder-decoders).

Seeding: with temperature > 0, sample ``k`` of a prompt draws from its own ``torch.Generator``
seeded ``static.sample_seed(seed, prompt, k)`` (a hash of the three), and each token is chosen
by ``live.sample_rows`` (the server's per-row sampling). A prompt's samples therefore depend only
on the seed, the prompt's text and ``k``: not on the other prompts of the call, their order, the
batch size, nor the chunk a caller splits its prompts into (eval resumes and chunks stay
consistent), and sample ``k`` is the same whatever ``num_samples`` (up to floating-point
differences of the logits between batch shapes, as for greedy decoding). Identical prompts in one call
get identical samples (ask ``num_samples`` for distinct ones). Without a seed, the base seed is
drawn once per call from torch's global generator. Greedy decoding (temperature 0) uses no
random numbers and leaves the global generator alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from .continuous import ContinuousBatcher, supports_continuous, token_picker
from .live import sample_rows
from .static import generate_static, sample_generators

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
    sampling seeded per sample by ``(seed, prompt, k)`` (see the module docstring: a prompt's
    samples do not depend on the rest of the batch), and nothing else from the model's
    generation config (no top-k, no repetition penalty); it stops at the generation config's and
    the tokenizer's end-of-sequence tokens.
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
    # The chat template already contains any BOS token, so don't add special tokens twice.
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if temperature > 0:
        generators = sample_generators(prompts, num_samples, seed, next(model.parameters()).device)
        batcher: ContinuousBatcher = _SeededBatcher(model, ids, temperature=temperature, top_p=top_p,
                                                    generators=generators, eos_ids=stop, pad_id=pad, **kwargs)
    else:
        batcher = ContinuousBatcher(model, ids, pick=token_picker(temperature, top_p), eos_ids=stop, pad_id=pad,
                                    **kwargs)
    return [tokenizer.decode(t, skip_special_tokens=True).strip() for t in batcher.run()]


class _SeededBatcher(ContinuousBatcher):
    """Continuous batching where every request (prompt ``i``'s sample ``k`` is request ``i * n + k``)
    samples with its own generator, through ``live.sample_rows``.

    ``ContinuousBatcher`` calls ``pick`` for one request's first token (in ``_start``, one row) and
    for a decode step (one row per slot, free slots included); ``_pick`` maps the rows back to their
    requests so that each row draws from its own generator, and free rows draw nothing.
    """

    def __init__(self, model: Any, prompts: Sequence[Sequence[int]], *, temperature: float, top_p: float,
                 generators: list[torch.Generator], **kwargs: Any):
        super().__init__(model, prompts, pick=self._pick, **kwargs)
        self.settings = [(temperature, top_p, g) for g in generators]
        self._starting: int | None = None

    def _start(self, row: int, request: int) -> None:
        self._starting = request
        try:
            super()._start(row, request)
        finally:
            self._starting = None

    def _pick(self, logits: torch.Tensor) -> torch.Tensor:
        requests = [self._starting] if self._starting is not None else [s.request for s in self.slots]
        if len(requests) != logits.shape[0]:
            raise RuntimeError(f"{logits.shape[0]} rows of logits for {len(requests)} requests")
        return sample_rows(logits, [self.settings[r] if r >= 0 else (0.0, 1.0, None) for r in requests])


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
