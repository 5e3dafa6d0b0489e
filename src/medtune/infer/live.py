"""A live request queue on the continuous-batching engine: requests join the running batch as they arrive.

``ContinuousBatcher`` is given all its prompts up front (evaluation). A server receives them
one by one, each with its own budget, sampling settings and ``n`` samples, and must stream
tokens, honour cancellation and never stop for a new arrival. ``LiveBatcher`` keeps the same
prefill, masks and KV rows and changes only what a live queue needs:

* ``submit`` (any thread) hands over a :class:`LiveRequest`; the engine thread takes it at the
  next step, prefills it and gives each of its samples a free row, while the other rows go
  on decoding (no drain between "batches": there are none).
* every token goes to the request's ``emit`` callback as it is chosen (with its log-probability
  and top alternatives when asked), and ``emit(sample, None, reason)`` ends a sample;
* each row samples with its own temperature/top-p and its own seeded generator;
* the KV buffer grows (rows and columns) when a longer prompt or more requests arrive, and
  shrinks to the live rows when most rows are free, so a lone request decodes one row;
* ``cancel`` (a client that went away) frees the row at the next step.

No shared-prefix prefill here: prompts arrive one at a time, there is no common prefix to find.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .continuous import SLACK_COLUMNS, ContinuousBatcher, _Slot
from .inbox import Inbox
from .kv import KVRows

log = logging.getLogger(__name__)

# emit(sample index, token id or None when the sample ends, details): details holds "logprob" and
# "top_logprobs" ([(token id, logprob)]) for a token, or "finish_reason" ("stop", "length",
# "cancelled", "error") and "error" at the end.
Emit = Callable[[int, "int | None", dict[str, Any]], None]


@dataclass
class LiveRequest:
    """One request: a tokenized prompt, ``n`` samples, decoding settings and where tokens go."""

    prompt: list[int]
    max_new_tokens: int
    emit: Emit
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    cancelled: bool = False
    cancelled_samples: set[int] = field(default_factory=set)
    generators: list[torch.Generator] = field(default_factory=list, repr=False)  # one per sample

    def cancel(self, sample: int | None = None) -> None:
        """Stop generating one sample, or all (read by the engine thread at its next step)."""
        if sample is None:
            self.cancelled = True
        else:
            self.cancelled_samples.add(sample)

    def is_cancelled(self, sample: int) -> bool:
        return self.cancelled or sample in self.cancelled_samples


def sample_rows(logits: torch.Tensor, settings: list[tuple[float, float, torch.Generator | None]]) -> torch.Tensor:
    """Next token per row of ``logits`` ``(rows, vocab)``: argmax where temperature is 0, else a
    temperature/top-p sample (transformers' warpers, as ``token_picker``) with the row's generator."""
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    chosen = logits.argmax(-1)
    for row, (temperature, top_p, generator) in enumerate(settings):
        if temperature <= 0:
            continue
        scores = TemperatureLogitsWarper(temperature)(None, logits[row : row + 1].float())
        if top_p < 1.0:
            scores = TopPLogitsWarper(top_p)(None, scores)
        probs = torch.softmax(scores, dim=-1)
        if generator is not None and generator.device != probs.device:  # torch samples only on the generator's device
            probs = probs.to(generator.device)
        chosen[row] = torch.multinomial(probs, 1, generator=generator)[0, 0].to(chosen.device)
    return chosen


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, top: int) -> list[dict[str, Any]]:
    """Per row: the chosen token's log-probability and the ``top`` most likely tokens with theirs."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    chosen = logp.gather(-1, tokens[:, None].to(logp.device))[:, 0].tolist()
    out = [{"logprob": c} for c in chosen]
    if top > 0:
        values, ids = logp.topk(top, dim=-1)
        for row, d in enumerate(out):
            d["top_logprobs"] = list(zip(ids[row].tolist(), values[row].tolist()))
    return out


def choose_and_emit(logits: torch.Tensor, samples: list[tuple[LiveRequest, int]], eos: set[int]) -> list[int]:
    """Each row's next token for its (request, sample), emitted with its log-probabilities when asked;
    an end-of-sequence token is returned but not emitted. Shared by every engine fed with LiveRequests."""
    lives = [live for live, _ in samples]
    tokens = sample_rows(logits, [(live.temperature, live.top_p, live.generators[k] if live.generators else None)
                                  for live, k in samples])
    want = [x for x in lives if x.logprobs]
    details = token_logprobs(logits, tokens, max(x.top_logprobs for x in want)) if want else [{}] * len(lives)
    out = tokens.tolist()
    for (live, sample), token, info in zip(samples, out, details):
        if token not in eos:
            if live.logprobs and "top_logprobs" in info:
                info = {**info, "top_logprobs": info["top_logprobs"][: live.top_logprobs]}
            live.emit(sample, token, info if live.logprobs else {})
    return out


def prepare_generator(request: LiveRequest) -> None:
    """One random generator per sample of a sampled request, seeded ``seed + sample`` when the request
    gives a seed: a sample's tokens then do not depend on which other rows share its decode steps."""
    if request.temperature > 0 and not request.generators:
        for k in range(request.n):
            g = torch.Generator(device="cpu")
            if request.seed is not None:
                g.manual_seed(request.seed + k)
            else:
                g.seed()
            request.generators.append(g)


class LiveBatcher(ContinuousBatcher):
    """The continuous-batching engine fed by a queue; ``serve_forever`` runs it on the calling thread."""

    def __init__(self, model: Any, *, max_rows: int, eos_ids: set[int], pad_id: int, max_prefill_tokens: int = 2048):
        super().__init__(model, [[pad_id, pad_id]], max_new_tokens=1, batch_size=1, pick=lambda x: x.argmax(-1),
                         eos_ids=eos_ids, pad_id=pad_id, max_prefill_tokens=max_prefill_tokens)
        self.max_rows = max(1, max_rows)
        self.prefix_len, self.longest = 0, 0
        self.prompts: dict[int, list[int]] = {}  # type: ignore[assignment]  # live prompt key -> ids
        self.queue: deque[int] = deque()
        self.results: dict[int, list[int]] = {}  # type: ignore[assignment]
        self.samples: dict[int, tuple[LiveRequest, int, int]] = {}  # engine request -> (request, prompt key, sample)
        self._ids = itertools.count()
        self._inbox: Inbox[LiveRequest] = Inbox()
        self._taking: list[int] = []  # requests being given rows by _fill (their prompt's samples count)
        self._reset_buffers()

    # ------------------------------------------------------------------ any thread
    def submit(self, request: LiveRequest) -> None:
        if not request.prompt:
            raise ValueError("every prompt needs at least one token")
        if request.max_new_tokens < 1 or request.n < 1:
            raise ValueError("max_new_tokens and n must be >= 1")
        prepare_generator(request)
        self._inbox.put(request)

    def stop(self) -> None:
        """Ask ``serve_forever`` to return; unfinished requests end with finish_reason "cancelled"."""
        self._inbox.stop()

    @property
    def load(self) -> int:
        """Samples waiting or decoding (for metrics)."""
        return len(self._inbox) + len(self.samples)

    # ------------------------------------------------------------------ engine thread
    def serve_forever(self) -> None:
        with torch.inference_mode():
            while True:
                arrived = self._inbox.take(busy=lambda: bool(self.samples))
                if arrived is None:
                    break
                try:
                    self._admit(arrived)
                    self._step()
                except Exception as e:  # one bad step must not kill the server: fail what was running, go on
                    log.exception("live batcher step failed")
                    self._fail_all(f"{type(e).__name__}: {e}")
        self._fail_all(None, reason="cancelled")

    def _admit(self, arrived: list[LiveRequest]) -> None:
        for request in arrived:
            key = next(self._ids)
            self.prompts[key] = list(request.prompt)
            for k in range(request.n):
                rid = next(self._ids)
                self.samples[rid] = (request, key, k)
                self.queue.append(rid)

    def _step(self) -> None:
        for row, slot in enumerate(self.slots):
            if slot.request >= 0 and self._cancelled(slot.request):
                self._finish(row, "cancelled")
        self._drop_cancelled_queue()
        free = [r for r, s in enumerate(self.slots) if s.request < 0]
        if self.queue and len(free) < len(self.queue) and len(self.slots) < self.max_rows:
            self._add_rows(min(self.max_rows, len(self._active()) + len(self.queue)) - len(self.slots))
            free = [r for r, s in enumerate(self.slots) if s.request < 0]
        if self.queue and free:
            self._fill(free)
        elif not self.queue and len(self.slots) > 1 and len(self._active()) <= len(self.slots) // 2 and self.kv:
            self._drop_free_rows()
        if self._active():
            self._decode_step()
        if not self.samples:
            self._reset_buffers()  # idle: free the KV memory; the next request starts a small buffer

    def _drop_cancelled_queue(self) -> None:
        for rid in [r for r in self.queue if self._cancelled(r)]:
            self.queue.remove(rid)
            self._end(rid, "cancelled")
        for key in [k for k in self.prefilled if not any(self.samples[r][1] == k for r in self.queue)]:
            del self.prefilled[key]  # every sample of that prompt was cancelled before it got a row

    def _cancelled(self, request: int) -> bool:
        live, _key, sample = self.samples[request]
        return live.is_cancelled(sample)

    def _add_rows(self, count: int) -> None:
        if count <= 0:
            return
        self.slots += [_Slot() for _ in range(count)]
        self.lengths = torch.cat([self.lengths, self.lengths.new_zeros(count)])
        self.next_tokens = torch.cat([self.next_tokens, self.next_tokens.new_full((count,), self.pad)])
        if self.kv is not None:
            self.kv.add_rows(count)

    # ------------------------------------------------------------------ hooks of ContinuousBatcher
    def _prompt_of(self, request: int) -> int:
        return self.samples[request][1]

    def _samples_of(self, prompt: int) -> int:
        return sum(1 for r in self.queue if self.samples[r][1] == prompt) + sum(
            1 for r in self._taking if self.samples[r][1] == prompt)

    def _fill(self, free: list[int]) -> None:
        self._taking = list(itertools.islice(self.queue, min(len(free), len(self.queue))))
        try:
            super()._fill(free)
        finally:
            self._taking = []
        for key in [k for k in self.prompts if k not in self.prefilled and not any(
                self.samples[r][1] == k for r in self.queue)]:
            del self.prompts[key]  # every sample has a row: the prompt ids are in the KV rows now

    def _start(self, row: int, request: int) -> None:
        pre = self._take_prefilled(request)
        live = self.samples[request][0]
        first = self._choose(pre.logits[None], [request])[0]
        self.results[request] = []
        if first in self.eos:
            self._end(request, "stop")
            return
        self.results[request].append(first)
        if live.max_new_tokens <= 1:
            self._end(request, "length")
            return
        self._ensure_columns(pre.cache, sum(b - a for a, b in pre.spans))
        self.lengths[row] = self.kv.put(row, pre.cache, pre.row, pre.spans)
        self.next_tokens[row] = first
        self.slots[row] = _Slot(request, [first])

    def _ensure_columns(self, template: Any, length: int) -> None:
        """A KV buffer whose column can hold a ``length``-token prompt, with room to decode after it."""
        if self.kv is None:
            self.kv = KVRows(template, len(self.slots), length + SLACK_COLUMNS, length)
        elif self.kv.column < length or self.kv.capacity < length + 1:
            column = max(self.kv.column, length)
            self.kv.resize(column + SLACK_COLUMNS, column)

    def _decode_step(self) -> None:
        logits = self._decode_forward()
        rows = self._active()
        chosen = self._choose(logits[rows], [self.slots[r].request for r in rows])
        for row, token in zip(rows, chosen):
            self.next_tokens[row] = token
            slot = self.slots[row]
            live = self.samples[slot.request][0]
            if token in self.eos:
                self._finish(row, "stop")
                continue
            slot.tokens.append(token)
            if len(slot.tokens) >= live.max_new_tokens:
                self._finish(row, "length")

    def _choose(self, logits: torch.Tensor, requests: list[int]) -> list[int]:
        """Pick each request's next token and emit it (an end-of-sequence token is not emitted)."""
        return choose_and_emit(logits, [self.samples[r][::2] for r in requests], self.eos)

    def _finish(self, row: int, reason: str = "stop") -> None:
        request = self.slots[row].request
        super()._finish(row)
        self._end(request, reason)

    def _end(self, request: int, reason: str, error: str | None = None) -> None:
        live, _key, sample = self.samples.pop(request)
        self.results.pop(request, None)
        details = {"finish_reason": reason} | ({"error": error} if error else {})
        try:
            live.emit(sample, None, details)
        except Exception:  # a consumer that went away must not stop the engine
            log.exception("emit failed")

    def _reclaim_columns(self) -> None:
        """Shift left by the columns no live row uses; when every column is in use, grow the buffer."""
        col = self.kv.column
        keep = max([int(self.lengths[r]) for r in self._active()] + [0])
        if keep < col:
            self.kv.shift_left(col - keep)
        else:
            self.kv.resize(self.kv.capacity + SLACK_COLUMNS, col)

    def _fail_all(self, error: str | None, reason: str = "error") -> None:
        """End every queued and running sample (after a failed step, or at shutdown) and reset the buffers."""
        for row, slot in enumerate(self.slots):
            if slot.request >= 0:
                self.slots[row] = _Slot()
        for rid in list(self.samples):
            self._end(rid, reason, error)
        for live in self._inbox.drain():
            for k in range(live.n):
                live.emit(k, None, {"finish_reason": reason} | ({"error": error} if error else {}))
        self.queue.clear()
        self.prefilled.clear()
        self.prompts.clear()
        self._reset_buffers()

    def _reset_buffers(self) -> None:
        self.kv = None
        self.slots = []
        self.lengths = self.lengths.new_zeros(0)
        self.next_tokens = self.next_tokens.new_full((0,), self.pad)
