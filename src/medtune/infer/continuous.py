"""Continuous batching for transformers decoder-only models: rows are refilled as soon as they finish.

``model.generate`` decodes a batch until its longest answer ends, so short answers leave
their rows idle, and every prompt is padded to the batch's longest. Here each request (a
prompt, or one of its samples) takes a row of a fixed-size decode batch when one is free
and gives it back at its end-of-sequence token, so the batch stays full while requests
remain. Prompts are prefilled in small groups of similar length, after a prefix common to
all prompts (the chat template's system turn) has been prefilled once and copied; the
samples of a prompt share its prefill. Greedy decoding gives the same tokens as
``generate`` (up to floating-point ties); sampling applies exactly temperature and top-p,
through transformers' logits warpers, and nothing from the model's generation config but
its end-of-sequence ids.

transformers' own continuous batching (``generate_batch``, paged attention) was measured
slower than padded ``generate`` on CPU for a 135M model (docs/benchmarks.md); this loop
runs the model's ordinary forward with a ``RowsLayer`` cache and an explicit 4D mask.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .kv import KVRows, empty_rows_cache, prefix_rows_cache

SLACK_COLUMNS = 64  # free columns reclaimed per shift of the decode buffer


def supports_continuous(model: Any) -> bool:
    """Decoder-only models whose every layer attends to all previous tokens (no sliding window, no recurrence),
    with an attention implementation that takes an explicit 4D mask (sdpa or eager; not flash-attention)."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if getattr(cfg, "is_encoder_decoder", False):
        return False
    if getattr(model.config, "_attn_implementation", None) not in ("sdpa", "eager", None):
        return False
    if getattr(cfg, "num_attention_heads", None) is None:  # no attention at all (RWKV)
        return False
    layer_types = getattr(cfg, "layer_types", None)  # "linear_attention" in Mamba and hybrids
    if layer_types is not None:
        return all(t == "full_attention" for t in layer_types)
    return getattr(cfg, "sliding_window", None) is None or getattr(cfg, "use_sliding_window", True) is False


def token_picker(temperature: float, top_p: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """Next-token choice from last-position logits ``(rows, vocab)``: argmax, or a temperature/top-p sample."""
    if temperature <= 0:
        return lambda logits: logits.argmax(-1)
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))

    def pick(logits: torch.Tensor) -> torch.Tensor:
        scores = warpers(None, logits.float())
        return torch.multinomial(torch.softmax(scores, dim=-1), 1).squeeze(-1)

    return pick


@dataclass
class _Prefilled:
    """A prompt's prefill: its cache row, the columns holding its tokens, the last-token logits."""

    cache: Any
    row: int
    spans: list[tuple[int, int]]
    logits: torch.Tensor
    waiting: int  # samples of this prompt not yet given a row


@dataclass
class _Slot:
    request: int = -1  # -1: free
    tokens: list[int] = field(default_factory=list)


class ContinuousBatcher:
    """Generates ``num_samples`` continuations for each prompt (token ids), ``batch_size`` rows at a time."""

    def __init__(self, model: Any, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, batch_size: int,
                 pick: Callable[[torch.Tensor], torch.Tensor], eos_ids: set[int], pad_id: int,
                 num_samples: int = 1, max_prefill_tokens: int = 2048):
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.model, self.prompts, self.n = model, [list(p) for p in prompts], num_samples
        self.max_new, self.rows, self.pick = max_new_tokens, max(1, batch_size), pick
        self.eos, self.pad, self.max_prefill_tokens = eos_ids, pad_id, max_prefill_tokens
        self.device = next(model.parameters()).device
        # eager attention adds the mask to its scores (a float mask in their dtype); sdpa takes a boolean mask
        eager = getattr(model.config, "_attn_implementation", None) == "eager"
        self.mask_dtype = model.get_input_embeddings().weight.dtype if eager else torch.bool
        common = len(os.path.commonprefix(self.prompts)) if len(self.prompts) > 1 else len(self.prompts[0]) - 1
        self.prefix_len = min(common, min(len(p) for p in self.prompts) - 1)
        self.longest = max(len(p) for p in self.prompts)
        # requests: prompt i's samples are i*n .. i*n+n-1; shortest prompts first (similar lengths prefill together)
        order = sorted(range(len(self.prompts)), key=lambda i: len(self.prompts[i]))
        self.queue = deque(i * self.n + k for i in order for k in range(self.n))
        self.results: list[list[int]] = [[] for _ in range(len(self.prompts) * self.n)]
        self.prefilled: dict[int, _Prefilled] = {}
        self.slots = [_Slot() for _ in range(self.rows)]
        self.lengths = torch.zeros(self.rows, dtype=torch.long, device=self.device)
        self.next_tokens = torch.full((self.rows,), pad_id, dtype=torch.long, device=self.device)
        self.kv: KVRows | None = None
        self.prefix = None

    # ------------------------------------------------------------------ driver
    def run(self) -> list[list[int]]:
        """The generated token ids of every request (end-of-sequence token excluded), in request order."""
        with torch.inference_mode():
            self.prefix = self._prefill_prefix()
            while self.queue or self._active():
                free = [r for r, s in enumerate(self.slots) if s.request < 0]
                if self.queue and free and (len(free) >= min(self._refill_at(), len(self.queue)) or not self._active()):
                    self._fill(free)
                elif not self.queue and 0 < len(self._active()) <= len(self.slots) // 2:
                    self._drop_free_rows()
                if self._active():
                    self._decode_step()
        return self.results

    def _active(self) -> list[int]:
        return [r for r, s in enumerate(self.slots) if s.request >= 0]

    def _refill_at(self) -> int:
        """Free rows that trigger a prefill (fewer when fewer requests remain): a few at a time, so
        prefills are not one-row forwards every step."""
        return max(1, len(self.slots) // 8)

    # ------------------------------------------------------------------ prefill
    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any) -> torch.Tensor:
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                         use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :]

    def _prefill_prefix(self) -> Any:
        if self.prefix_len == 0:
            return None
        cache = empty_rows_cache(self.prefix_len)
        ids = torch.tensor([self.prompts[0][: self.prefix_len]], device=self.device)
        positions = torch.arange(self.prefix_len, device=self.device)[None]
        self._forward(ids, self._prefill_mask(torch.tensor([self.prefix_len]), self.prefix_len, 0), positions, cache)
        return cache

    def _prefill_mask(self, lengths: torch.Tensor, width: int, prefix: int) -> torch.Tensor:
        """4D attention mask for left-padded suffixes of ``lengths`` (padded to ``width``) after a shared prefix."""
        q = torch.arange(width)[None, :, None]
        k = torch.arange(prefix + width)[None, None, :] - prefix  # < 0: a prefix column
        start = (width - lengths)[:, None, None]
        visible = (k < 0) | ((k <= q) & (k >= start)) | (k == q)  # k == q: pad queries see themselves (no empty row)
        return self._mask(visible[:, None])

    def _mask(self, visible: torch.Tensor) -> torch.Tensor:
        if self.mask_dtype == torch.bool:
            return visible.to(self.device)
        zero = torch.zeros((), dtype=self.mask_dtype)
        return torch.where(visible, zero, torch.finfo(self.mask_dtype).min).to(self.device)

    def _prefill_group(self, prompt_ids: list[int]) -> None:
        """Prefill the suffixes of some prompts together (left-padded), after the shared prefix."""
        p = self.prefix_len
        suffixes = [self.prompts[i][p:] for i in prompt_ids]
        width = max(len(s) for s in suffixes)
        lengths = torch.tensor([len(s) for s in suffixes])
        ids = torch.tensor([[self.pad] * (width - len(s)) + s for s in suffixes], device=self.device)
        positions = (p + torch.arange(width)[None] - (width - lengths)[:, None]).clamp(min=0).to(self.device)
        cache = (prefix_rows_cache(self.prefix, len(suffixes), p + width) if self.prefix is not None
                 else empty_rows_cache(width))
        logits = self._forward(ids, self._prefill_mask(lengths, width, p), positions, cache)
        for row, (i, s) in enumerate(zip(prompt_ids, suffixes, strict=True)):
            spans = ([(0, p)] if p else []) + [(p + width - len(s), p + width)]
            self.prefilled[i] = _Prefilled(cache, row, spans, logits[row], self._samples_of(i))

    def _fill(self, free: list[int]) -> None:
        """Give free rows to the next requests, prefilling their prompts (once per prompt)."""
        taken = [self.queue.popleft() for _ in range(min(len(free), len(self.queue)))]
        todo = list(dict.fromkeys(self._prompt_of(r) for r in taken if self._prompt_of(r) not in self.prefilled))
        group: list[int] = []
        for i in todo:
            width = max([len(self.prompts[j]) for j in group + [i]]) - self.prefix_len
            if group and width * (len(group) + 1) > self.max_prefill_tokens:
                self._prefill_group(group)
                group = []
            group.append(i)
        if group:
            self._prefill_group(group)
        for row, request in zip(free, taken):
            self._start(row, request)

    def _prompt_of(self, request: int) -> int:
        """The prompt a request (one sample) continues: requests i*n .. i*n+n-1 are prompt i's samples."""
        return request // self.n

    def _samples_of(self, prompt: int) -> int:
        return self.n

    def _take_prefilled(self, request: int) -> _Prefilled:
        """The request's prompt prefill; dropped once its last sample has a row."""
        prompt = self._prompt_of(request)
        pre = self.prefilled[prompt]
        pre.waiting -= 1
        if pre.waiting == 0:
            del self.prefilled[prompt]
        return pre

    def _start(self, row: int, request: int) -> None:
        """Put a prefilled request in ``row`` and choose its first token."""
        pre = self._take_prefilled(request)
        first = int(self.pick(pre.logits[None])[0])
        self.results[request] = [] if first in self.eos else [first]
        if first in self.eos or self.max_new <= 1:
            return  # finished without decoding: the row stays free
        if self.kv is None:
            capacity = self.longest + self.max_new + SLACK_COLUMNS
            self.kv = KVRows(pre.cache, len(self.slots), capacity, self.longest)
        self.lengths[row] = self.kv.put(row, pre.cache, pre.row, pre.spans)
        self.next_tokens[row] = first
        self.slots[row] = _Slot(request, [first])

    # ------------------------------------------------------------------ decode
    def _decode_forward(self) -> torch.Tensor:
        """One decode step over every row (free rows masked to themselves); the next-token logits ``(rows, vocab)``."""
        kv = self.kv
        if kv.column >= kv.capacity:
            self._reclaim_columns()
        col = kv.column
        active = torch.tensor([s.request >= 0 for s in self.slots], device=self.device)
        lengths = torch.where(active, self.lengths, torch.zeros_like(self.lengths))
        visible = torch.arange(col + 1, device=self.device)[None, :] >= (col - lengths)[:, None]
        logits = self._forward(self.next_tokens[:, None], self._mask(visible[:, None, None]),
                               lengths[:, None], kv.cache)
        self.lengths = lengths + active.long()
        return logits

    def _decode_step(self) -> None:
        chosen = self.pick(self._decode_forward())
        self.next_tokens = chosen
        for row, token in enumerate(chosen.tolist()):
            slot = self.slots[row]
            if slot.request < 0:
                continue
            if token in self.eos:
                self._finish(row)
                continue
            slot.tokens.append(token)
            if len(slot.tokens) >= self.max_new:
                self._finish(row)

    def _finish(self, row: int) -> None:
        slot = self.slots[row]
        self.results[slot.request] = slot.tokens
        self.slots[row] = _Slot()
        self.lengths[row] = 0
        self.next_tokens[row] = self.pad

    def _reclaim_columns(self) -> None:
        """Shift the buffer left by the columns no live row uses (keeping room for the longest queued prompt)."""
        col = self.kv.column
        live = [int(self.lengths[r]) for r in self._active()]
        keep = max(live + [self.longest if self.queue else 0])
        self.kv.shift_left(col - keep)

    def _drop_free_rows(self) -> None:
        """No more requests: shrink the batch to its live rows (fewer rows per decode step)."""
        rows = self._active()
        index = torch.tensor(rows, device=self.device)
        self.kv.select(index)
        self.slots = [self.slots[r] for r in rows]
        self.lengths, self.next_tokens = self.lengths[index], self.next_tokens[index]
