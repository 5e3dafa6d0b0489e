"""Parallel sequences ("slots") in one llama.cpp context, fed by the live queue's ``LiveRequest``.

llama-cpp-python's ``Llama`` decodes one sequence at a time and its server serializes requests
behind a global lock. llama.cpp itself batches any number of sequences in one ``llama_decode``
(that is how llama-server serves in parallel); this engine does the same through the low-level
binding: one context with ``n_seq_max = slots`` (each slot its own KV sequence, ``kv_unified``
off so a slot always has its ``n_ctx / slots`` cells), and every step one batch holding each
decoding slot's last token plus chunks of newly arrived prompts (continuous batching: a request
joins at the next step). Tokens are chosen by ``medtune.infer.live.choose_and_emit`` from the
logits rows, so sampling, seeds and log-probabilities match the transformers engine exactly.

A slot keeps its tokens' KV after its request ends; a new request takes the free slot whose
cached tokens share the longest prefix with its prompt and prefills only the rest (llama-server's
``cache_prompt``). Scoring jobs (``score``: log-probabilities of given continuation tokens, for
option log-likelihoods) run through the same slots and batches.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch

from ...infer.inbox import Inbox
from ...infer.live import LiveRequest, choose_and_emit, prepare_generator

log = logging.getLogger(__name__)


@dataclass
class ScoreJob:
    """Sum of log-probabilities of ``tokens[start:]`` given the tokens before; ``done(value)`` gets it."""

    tokens: list[int]
    start: int
    done: Any  # Callable[[float | None, str | None], None]: (logprob sum, error)
    cancelled: bool = False


@dataclass
class _Slot:
    seq: int
    cached: list[int] = field(default_factory=list)  # tokens whose KV this sequence holds
    work: LiveRequest | ScoreJob | None = None
    sample: int = 0
    pending: list[int] = field(default_factory=list)  # tokens to feed, at positions len(cached)...
    generated: int = 0
    score: float = 0.0

    @property
    def busy(self) -> bool:
        return self.work is not None


class SlotEngine:
    """Loads a GGUF once; ``serve_forever`` runs the decode loop on the calling (engine) thread."""

    def __init__(self, gguf_path: str, *, slots: int, n_ctx: int | None = None, threads: int | None = None,
                 n_batch: int = 512, default_ctx: int = 4096):
        import llama_cpp
        from llama_cpp._internals import LlamaBatch, LlamaContext, LlamaModel
        from llama_cpp._logger import set_verbose

        set_verbose(False)  # llama.cpp's own log lines (one per tensor) only on errors
        llama_cpp.llama_backend_init()
        self._lib = llama_cpp
        self.model = LlamaModel(path_model=gguf_path, params=llama_cpp.llama_model_default_params(), verbose=False)
        trained = self.model.n_ctx_train() or default_ctx
        self.n_ctx_seq = n_ctx = min(n_ctx or min(trained, default_ctx), trained)  # per slot
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_seq_max, params.kv_unified = n_ctx * slots, slots, False
        params.n_batch = params.n_ubatch = max(n_batch, slots)
        # ggml's worker threads spin at barriers: more threads than free cores stalls every step, so the
        # default is the cores this process may run on (sched_getaffinity), not the machine's count
        params.n_threads = params.n_threads_batch = threads or _usable_cores()
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as llama-cpp-python's Llama does on CPU
        self.ctx = LlamaContext(model=self.model, params=params, verbose=False)
        self.n_batch = params.n_batch
        self.batch = LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1, verbose=False)
        self.n_vocab = self.model.n_vocab()
        vocab = self.model.vocab
        self.eos = {t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)}
        self.slots = [_Slot(seq=i) for i in range(slots)]
        self.waiting: deque[tuple[LiveRequest | ScoreJob, int]] = deque()
        self._inbox: Inbox[LiveRequest | ScoreJob] = Inbox()
        self._pieces: dict[int, bytes] = {}

    # ------------------------------------------------------------------ any thread
    def submit(self, work: LiveRequest | ScoreJob) -> None:
        if isinstance(work, LiveRequest):
            if not work.prompt or work.max_new_tokens < 1 or work.n < 1:
                raise ValueError("a request needs prompt tokens, max_new_tokens >= 1 and n >= 1")
            prepare_generator(work)
        elif not 0 < work.start < len(work.tokens):
            raise ValueError("a score job needs context tokens before the scored ones")
        self._inbox.put(work)

    def stop(self) -> None:
        self._inbox.stop()

    @property
    def load(self) -> int:
        return len(self._inbox) + len(self.waiting) + sum(s.busy for s in self.slots)

    # ------------------------------------------------------------------ engine thread
    def serve_forever(self) -> None:
        # Token choice runs torch on one logits row per slot. torch parallelizes reductions over a
        # 49k-entry row, and its OpenMP workers then spin, taking cores from llama.cpp's threads:
        # decoding measured 1.7x slower on 2 cores. One torch thread is plenty for that work. The
        # setting is the calling thread's own (OpenMP), so it is made here, on the engine thread, and
        # undone on the way out: set where the engine was built, it stayed on that thread for good.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            self._loop()
        finally:
            torch.set_num_threads(threads)

    def _loop(self) -> None:
        while True:
            arrived = self._inbox.take(busy=lambda: bool(self.waiting) or any(s.busy for s in self.slots))
            if arrived is None:
                break
            for work in arrived:
                n = work.n if isinstance(work, LiveRequest) else 1
                self.waiting.extend((work, k) for k in range(n))
            try:
                self._assign()
                self._step()
            except Exception as e:  # fail what was running; the engine goes on
                log.exception("llama.cpp step failed")
                self._fail_all("error", f"{type(e).__name__}: {e}")
        self._fail_all("cancelled", None)

    def _cancelled(self, work: Any, sample: int) -> bool:
        return work.is_cancelled(sample) if isinstance(work, LiveRequest) else work.cancelled

    def _assign(self) -> None:
        """Give waiting work the free slot whose cached tokens share the longest prefix with its prompt."""
        for item in [w for w in self.waiting if self._cancelled(*w)]:
            self.waiting.remove(item)
            self._end_work(item[0], item[1], "cancelled")
        free = [s for s in self.slots if not s.busy]
        while self.waiting and free:
            work, sample = self.waiting.popleft()
            tokens = work.prompt if isinstance(work, LiveRequest) else work.tokens
            slot = max(free, key=lambda s: _common_prefix(s.cached, tokens))
            free.remove(slot)
            keep = min(_common_prefix(slot.cached, tokens), len(tokens) - 1)
            if isinstance(work, ScoreJob):
                keep = min(keep, work.start - 1)  # the scored positions' logits must be computed
            self._lib.llama_memory_seq_rm(self.ctx.memory, slot.seq, keep, -1)
            slot.cached, slot.pending = slot.cached[:keep], list(tokens[keep:])
            slot.work, slot.sample, slot.generated, slot.score = work, sample, 0, 0.0

    def _step(self) -> None:
        for slot in self.slots:
            if slot.busy and self._cancelled(slot.work, slot.sample):
                self._release(slot, "cancelled")
        plan = self._plan_batch()
        if not plan:
            return
        rc = self._lib.llama_decode(self.ctx.ctx, self.batch.batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        rows, owners = [], []
        for slot, fed, logit_rows in plan:
            slot.cached += slot.pending[:fed]
            slot.pending = slot.pending[fed:]
            if isinstance(slot.work, ScoreJob):
                self._score_rows(slot, logit_rows)
            elif not slot.pending and logit_rows:
                rows.append(logit_rows[-1][0])
                owners.append(slot)
        if rows:
            self._sample(rows, owners)

    def _plan_batch(self) -> list[tuple[_Slot, int, list[tuple[int, int]]]]:
        """Fill the batch: one token per decoding slot first, then prompt chunks; returns per slot
        (slot, tokens fed, [(batch index, position)] whose logits are read)."""
        b, budget, plan = self.batch.batch, self.n_batch, []
        b.n_tokens = 0
        busy = sorted((s for s in self.slots if s.busy and s.pending), key=lambda s: len(s.pending))
        for slot in busy:
            take = min(len(slot.pending), budget)
            if take == 0:
                break
            if len(slot.cached) + take > self.n_ctx_seq:
                self._release(slot, "length")  # the slot's context is full
                continue
            reads = []
            for i in range(take):
                j, pos = b.n_tokens, len(slot.cached) + i
                b.token[j], b.pos[j], b.n_seq_id[j] = slot.pending[i], pos, 1
                b.seq_id[j][0] = slot.seq
                b.logits[j] = self._wants_logits(slot, pos, take, i)
                if b.logits[j]:
                    reads.append((j, pos))
                b.n_tokens += 1
            budget -= take
            plan.append((slot, take, reads))
        return plan

    def _wants_logits(self, slot: _Slot, pos: int, take: int, i: int) -> bool:
        if isinstance(slot.work, ScoreJob):  # logits at positions start-1 .. len-2 predict the scored tokens
            return slot.work.start - 1 <= pos < len(slot.work.tokens) - 1
        return i == take - 1 and take == len(slot.pending)

    def _logits(self, index: int) -> torch.Tensor:
        ptr = self._lib.llama_get_logits_ith(self.ctx.ctx, index)
        return torch.frombuffer(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float * self.n_vocab)).contents,
                                dtype=torch.float32).clone()

    def _sample(self, rows: list[int], owners: list[_Slot]) -> None:
        logits = torch.stack([self._logits(i) for i in rows])
        tokens = choose_and_emit(logits, [(s.work, s.sample) for s in owners], self.eos)
        for slot, token in zip(owners, tokens):
            slot.generated += 1
            if token in self.eos:
                self._release(slot, "stop")
            elif slot.generated >= slot.work.max_new_tokens:
                self._release(slot, "length")  # the last token is not fed: the cache holds what it computed
            else:
                slot.pending = [token]

    def _score_rows(self, slot: _Slot, reads: list[tuple[int, int]]) -> None:
        job = slot.work
        for index, pos in reads:
            logp = torch.log_softmax(self._logits(index), dim=-1)
            slot.score += float(logp[job.tokens[pos + 1]])
        if not slot.pending:
            slot.work = None
            job.done(slot.score, None)

    def _release(self, slot: _Slot, reason: str, error: str | None = None) -> None:
        work, sample = slot.work, slot.sample
        slot.work, slot.pending = None, []
        self._end_work(work, sample, reason, error)

    def _end_work(self, work: Any, sample: int, reason: str, error: str | None = None) -> None:
        try:
            if isinstance(work, LiveRequest):
                work.emit(sample, None, {"finish_reason": reason} | ({"error": error} if error else {}))
            else:
                work.done(None, error or reason)
        except Exception:
            log.exception("emit failed")

    def _fail_all(self, reason: str, error: str | None) -> None:
        for slot in self.slots:
            if slot.busy:
                self._release(slot, reason, error)
            slot.cached = []  # a failed decode leaves the KV in an unknown state
        self._lib.llama_memory_clear(self.ctx.memory, True)
        pending = [(w, k) for w in self._inbox.drain() for k in range(w.n if isinstance(w, LiveRequest) else 1)]
        for work, sample in list(self.waiting) + pending:
            self._end_work(work, sample, reason, error)
        self.waiting.clear()

    # ------------------------------------------------------------------ tokens and text
    def tokenize(self, text: str, add_bos: bool = False) -> list[int]:
        return self.model.tokenize(text.encode("utf-8"), add_bos, True)

    def piece(self, token: int) -> bytes:
        """The token's bytes (``LlamaModel.token_to_piece`` returns its whole 32-byte buffer, NULs included)."""
        cached = self._pieces.get(token)
        if cached is None:
            size = 32
            while True:
                buf = ctypes.create_string_buffer(size)
                n = self._lib.llama_token_to_piece(self.model.vocab, token, buf, size, 0, False)
                if n >= 0:
                    break
                size = -n  # too small: llama.cpp says how much it needs
            cached = self._pieces[token] = buf.raw[:n]
        return cached

    def close(self) -> None:
        self.batch.close()
        self.ctx.close()
        self.model.close()


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
