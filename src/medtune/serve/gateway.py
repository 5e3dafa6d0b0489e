"""The gateway: the one way a route reaches the model (after the guards: queue -> backend -> texts recorded).

``prepare`` applies the deployment's PHI policy (``screen``: ``medtune.serve.secure.screen_prompt``),
renders and tokenizes what the policy lets through, checks it against the context, clamps
max_tokens (the one clamp: ``max_tokens_ceiling``, then the room the prompt leaves), and records the
input text the model sees on the request context. ``run`` admits the request into the bounded
queue (full: 503 with Retry-After), streams the backend's events under the request timeout,
records the output text and token counts, and cancels the generation if the consumer stops
reading (a client that disconnected). ``complete`` is ``run`` collected, racing a disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from .backends import Backend, BackendError, Finished, Piece, Prepared, Prompt, SamplingParams
from .context import RequestContext
from .errors import APIError
from .identity import ModelIdentity


@dataclass
class Choice:
    """One sample, collected: its text, finish reason, token count and log-probability entries."""

    index: int
    text: str = ""
    finish_reason: str | None = None
    completion_tokens: int = 0
    logprobs: list[dict[str, Any]] = field(default_factory=list)


class ClientGone(Exception):
    """The client disconnected before its answer was complete (the generation was cancelled)."""


class Gateway:
    def __init__(self, backend: Backend, identity: ModelIdentity, settings: Any):
        self.backend, self.identity, self.settings = backend, identity, settings
        self.capacity = settings.slots + settings.queue_size
        self.retry_after_s = settings.retry_after_s
        self.in_flight = 0
        self.draining = False
        self.ready = False
        self.on_reject = lambda reason: None
        # (ctx, prompt) -> the prompt the model may see; the app installs the PHI policy here
        self.screen: Callable[[RequestContext, Prompt], Prompt] = lambda ctx, prompt: prompt

    # ------------------------------------------------------------------ prompt
    def check_model(self, name: str | None) -> None:
        if name is not None and name != self.identity.served_name:
            raise APIError(404, f"The model `{name}` does not exist; this server serves `{self.identity.served_name}` "
                           "(GET /v1/models)", code="model_not_found", param="model")

    def prepare(self, ctx: RequestContext, prompt: Prompt, requested_max_tokens: int | None) -> tuple[Prepared, int]:
        """(tokenized prompt, max_tokens after the ceiling and the context); 400 for a prompt that cannot fit."""
        prompt = self.screen(ctx, prompt)  # the PHI policy first: nothing it holds back reaches the model
        try:
            prepared = self.backend.prepare(prompt)
        except BackendError as e:
            raise APIError(e.status, str(e), code=e.code, param=e.param) from None
        ctx.inputs.append(_prompt_text(prompt))
        ctx.prompt_tokens += prepared.n_tokens
        ctx.model_sha256 = self.identity.sha256
        s = self.settings
        max_tokens = min(requested_max_tokens or s.max_tokens_default, s.max_tokens_ceiling)
        limit = self.backend.context_length
        if limit and prepared.tokens is not None:
            room = limit - prepared.n_tokens
            if room < 1:
                raise APIError(400, f"This model's maximum context length is {limit} tokens; the prompt has "
                               f"{prepared.n_tokens} tokens. Shorten the messages.", code="context_length_exceeded",
                               param="messages" if prompt.messages is not None else "prompt")
            max_tokens = min(max_tokens, room)
        return prepared, max_tokens

    # ------------------------------------------------------------------ admission
    def admit(self) -> Ticket:
        """A place in the bounded queue, or 503 with Retry-After. Take it before a response starts
        (a streamed 200 cannot become a 503 later); release it when the generation ends."""
        if self.draining:
            self.on_reject("shutting_down")
            raise APIError(503, "the server is shutting down", code="shutting_down",
                           headers={"Retry-After": str(self.retry_after_s)})
        if self.in_flight >= self.capacity:
            self.on_reject("queue_full")
            raise APIError(503, f"the server is at capacity ({self.settings.slots} decoding, "
                           f"{self.settings.queue_size} waiting); retry later", code="queue_full",
                           headers={"Retry-After": str(self.retry_after_s)})
        self.in_flight += 1
        return Ticket(self)

    @property
    def queue_depth(self) -> int:
        return max(0, self.backend.load - self.backend.parallel)

    # ------------------------------------------------------------------ generation
    async def run(self, ctx: RequestContext, prepared: Prepared, params: SamplingParams,
                  ticket: Ticket | None = None) -> AsyncIterator[Piece | Finished]:
        """The backend's events for this request, admitted (with ``ticket``, or here), timed and recorded."""
        texts = [""] * params.n
        ticket = ticket or self.admit()
        try:
            stream = self.backend.stream(prepared, params)
            deadline = time.monotonic() + self.settings.request_timeout_s
            try:
                while True:
                    try:
                        event = await asyncio.wait_for(anext(stream), max(0.0, deadline - time.monotonic()))
                    except StopAsyncIteration:
                        break
                    except asyncio.TimeoutError:
                        raise APIError(504, f"generation took longer than {self.settings.request_timeout_s:g} s "
                                       "and was cancelled", code="timeout") from None
                    except BackendError as e:
                        raise APIError(e.status, str(e), code=e.code) from None
                    if isinstance(event, Piece):
                        ctx.mark_first_token()
                        texts[event.index] += event.text
                    else:
                        ctx.completion_tokens += event.completion_tokens
                        ctx.finish_reasons.append(event.finish_reason)
                        if event.finish_reason == "error":
                            raise APIError(500, "generation failed (logged on the server)", code="generation_failed")
                    yield event
            finally:
                await stream.aclose()  # cancels the engine's work if we stopped early
        finally:
            ticket.release()
            ctx.outputs.extend(t for t in texts if t)

    async def complete(self, ctx: RequestContext, prepared: Prepared, params: SamplingParams,
                       request: Request | None = None, ticket: Ticket | None = None) -> list[Choice]:
        """Every sample collected; a client that disconnects meanwhile cancels the generation (ClientGone)."""
        choices = [Choice(i) for i in range(params.n)]
        ticket = ticket or self.admit()

        async def collect() -> None:
            async with contextlib.aclosing(self.run(ctx, prepared, params, ticket)) as events:
                async for event in events:
                    _add(choices[event.index], event)

        try:
            return await self._race(collect, choices, request)
        finally:
            ticket.release()

    @staticmethod
    async def _race(collect: Any, choices: list[Choice], request: Request | None) -> list[Choice]:
        if request is None:
            await collect()
            return choices
        work, watch = asyncio.create_task(collect()), asyncio.create_task(_disconnected(request))
        done, _ = await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        if work in done:
            watch.cancel()
            work.result()
            return choices
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        raise ClientGone()


class Ticket:
    """An admitted request's place; ``release`` is idempotent (called by the stream and by cleanup)."""

    def __init__(self, gateway: Gateway):
        self.gateway, self.held = gateway, True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.gateway.in_flight -= 1


def _add(choice: Choice, event: Piece | Finished) -> None:
    if isinstance(event, Piece):
        choice.text += event.text
        if event.logprob:
            choice.logprobs.append(event.logprob)
    else:
        choice.finish_reason, choice.completion_tokens = event.finish_reason, event.completion_tokens


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body was already read: only disconnects remain)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _prompt_text(prompt: Prompt) -> str:
    if prompt.messages is not None:
        return "\n".join(f"{m['role']}: {m['content']}" for m in prompt.messages)
    return prompt.text or ""
