"""The one interface every serving backend implements, and the half shared by the in-process ones.

A backend turns a :class:`Prompt` (chat messages or raw text) and :class:`SamplingParams` into
an async stream of :class:`Piece` (a text delta of one sample, with its token's log-probability
when asked) and :class:`Finished` events, one per sample. Closing the stream early (a client
that went away, a timeout) cancels the generation.

:class:`EngineBackend` is that stream for an engine thread fed with
:class:`medtune.infer.live.LiveRequest` (the transformers ``LiveBatcher`` and the llama.cpp
``SlotEngine``): it renders and tokenizes the prompt, hands tokens from the engine thread to
the event loop, detokenizes, applies stop sequences and counts tokens.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ...infer.live import LiveRequest
from .text import StopScanner

log = logging.getLogger(__name__)


class BackendError(RuntimeError):
    """The backend cannot do what was asked (the message is safe to show a client)."""

    def __init__(self, message: str, status: int = 400, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.code, self.param = status, code, param


def template_refusal(error: Exception) -> BackendError:
    """A chat template's error as the client's: ``raise_exception(...)`` in a template refuses messages it
    does not take (roles that do not alternate, a system turn the model has no place for) -> 400 with the
    template's own message. A template that is itself broken (syntax, a sandbox violation) is the
    server's fault -> 500, naming only the error's type."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SecurityError

    if isinstance(error, (TemplateSyntaxError, SecurityError)):
        return BackendError(f"the model's chat template cannot be rendered ({type(error).__name__}); use "
                            "/v1/completions with a formatted prompt", 500, "chat_template_error")
    reason = " ".join(str(error).split())[:300] or type(error).__name__
    return BackendError(f"the model's chat template refused these messages: {reason}", 400, "chat_template_error",
                        "messages")


@dataclass
class Prompt:
    """What the model is asked: chat ``messages`` (rendered by the chat template) or raw ``text``."""

    messages: list[dict[str, Any]] | None = None
    text: str | None = None


@dataclass
class SamplingParams:
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass
class Piece:
    index: int
    text: str
    logprob: dict[str, Any] | None = None  # OpenAI's {"token", "logprob", "bytes", "top_logprobs"}


@dataclass
class Finished:
    index: int
    finish_reason: str  # stop | length | cancelled | error
    completion_tokens: int
    error: str | None = None


@dataclass
class Prepared:
    """A prompt ready for the engine: its token ids (None for an upstream) and how many there are."""

    prompt: Prompt
    tokens: list[int] | None
    n_tokens: int


class Backend(ABC):
    name: str = "?"
    supports_logprobs: bool = True
    supports_loglik: bool = True  # can score option log-likelihoods (eval's loglik protocol)

    def __init__(self, *, served_name: str, context_length: int, parallel: int, reasoning_format: str,
                 trained_system_prompt: str | None = None):
        self.served_name, self.context_length = served_name, context_length
        self.parallel, self.reasoning_format = parallel, reasoning_format
        # The system prompt the model was trained with (None: none, or not known, as behind an upstream):
        # /v1/analyze_case asks with it, as eval does, unless serve.system_prompt says otherwise.
        self.trained_system_prompt = trained_system_prompt

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start engine threads or connections (called once, inside the server's event loop)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop: running generations end with finish_reason "cancelled"."""

    @abstractmethod
    def prepare(self, prompt: Prompt) -> Prepared:
        """Render and tokenize (raises BackendError for prompts the backend cannot take)."""

    @abstractmethod
    def stream(self, prepared: Prepared, params: SamplingParams) -> AsyncIterator[Piece | Finished]:
        """Generate ``params.n`` samples; ends after every sample's Finished."""

    async def score_options(self, context: str, options: list[str]) -> list[float]:
        """Summed log-probability of each option's continuation after ``context`` (raw text)."""
        raise BackendError(f"the {self.name} backend cannot score option log-likelihoods", 400)

    @property
    def load(self) -> int:
        """Samples waiting or running in the engine (for metrics)."""
        return 0


class EngineBackend(Backend):
    """A backend whose engine runs in a thread of this process; subclasses give the engine and tokenizer."""

    engine: Any

    @abstractmethod
    def render(self, prompt: Prompt) -> str:
        """The prompt text (chat template applied)."""

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def detokenizer(self) -> Any:
        """A fresh object with ``push(token) -> str`` and ``flush() -> str``."""

    @abstractmethod
    def token_bytes(self, token: int) -> bytes: ...

    async def start(self) -> None:
        self._thread = threading.Thread(target=self.engine.serve_forever, name=f"medtune-{self.name}-engine", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        self.engine.stop()
        thread = getattr(self, "_thread", None)
        if thread is not None:
            await asyncio.to_thread(thread.join, 30)

    @property
    def load(self) -> int:
        return self.engine.load

    def prepare(self, prompt: Prompt) -> Prepared:
        from jinja2 import TemplateError

        try:
            text = self.render(prompt)
        except TemplateError as e:  # the model's chat template (llama.cpp's sandbox or transformers') refused
            raise template_refusal(e) from None
        tokens = self.encode(text)
        if not tokens:
            raise BackendError("the prompt is empty after templating", 400, "empty_prompt")
        return Prepared(prompt, tokens, len(tokens))

    def _logprob_entry(self, token: int, info: dict[str, Any]) -> dict[str, Any]:
        def entry(t: int, lp: float) -> dict[str, Any]:
            raw = self.token_bytes(t)
            return {"token": raw.decode("utf-8", errors="replace"), "logprob": lp, "bytes": list(raw)}

        out = entry(token, info["logprob"])
        out["top_logprobs"] = [entry(t, lp) for t, lp in info.get("top_logprobs", [])]
        return out

    async def stream(self, prepared: Prepared, params: SamplingParams) -> AsyncIterator[Piece | Finished]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def emit(sample: int, token: int | None, info: dict[str, Any]) -> None:  # engine thread
            loop.call_soon_threadsafe(events.put_nowait, (sample, token, info))

        request = LiveRequest(prompt=prepared.tokens, max_new_tokens=params.max_tokens, emit=emit, n=params.n,
                              temperature=params.temperature, top_p=params.top_p, seed=params.seed,
                              logprobs=params.logprobs, top_logprobs=params.top_logprobs)
        detoks = [self.detokenizer() for _ in range(params.n)]
        scanners = [StopScanner(params.stop) for _ in range(params.n)]
        counts, open_samples = [0] * params.n, set(range(params.n))
        self.engine.submit(request)
        try:
            while open_samples:
                sample, token, info = await events.get()
                if sample not in open_samples:
                    continue  # ended by a stop sequence; the engine's own end arrives later
                if token is None:
                    tail = scanners[sample].push(detoks[sample].flush())[0] + scanners[sample].flush()
                    if tail:
                        yield Piece(sample, tail)
                    open_samples.discard(sample)
                    reason = "stop" if scanners[sample].stopped else info["finish_reason"]
                    yield Finished(sample, reason, counts[sample], info.get("error"))
                    continue
                counts[sample] += 1
                text, stopped = scanners[sample].push(detoks[sample].push(token))
                logprob = self._logprob_entry(token, info) if params.logprobs and "logprob" in info else None
                if text or logprob:
                    yield Piece(sample, text, logprob)
                if stopped:
                    request.cancel(sample)
                    open_samples.discard(sample)
                    yield Finished(sample, "stop", counts[sample])
        finally:
            request.cancel()  # a consumer that stopped reading (disconnect, timeout) frees the rows
