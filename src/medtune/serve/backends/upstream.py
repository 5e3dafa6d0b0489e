"""The openai backend: forward to an OpenAI-compatible server (vLLM, llama-server, another medtune).

Everything medtune adds (the case endpoint, queue limits, metrics, the disclaimer, and #14's
keys, PHI policy and audit log) applies in front of a GPU-scale engine this way. The upstream
renders chat templates and counts tokens itself; its weights are not visible from here, so the
model digest is None. Option log-likelihoods are not part of the chat API: /v1/analyze_case falls
back to k-sample agreement on this backend.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from ..identity import ModelIdentity
from .base import Backend, BackendError, Finished, Piece, Prepared, Prompt, SamplingParams


class OpenAIUpstreamBackend(Backend):
    name = "openai"
    supports_loglik = False

    def __init__(self, endpoint: str, model: str, *, served_name: str, api_key: str | None, timeout: float,
                 parallel: int, reasoning_format: str, context_length: int):
        super().__init__(served_name=served_name, context_length=context_length, parallel=parallel,
                         reasoning_format=reasoning_format)
        from openai import AsyncOpenAI

        self.endpoint, self.model = endpoint, model
        self.client = AsyncOpenAI(base_url=endpoint, api_key=api_key or "EMPTY", timeout=timeout, max_retries=0)
        self._inflight = 0

    async def close(self) -> None:
        await self.client.close()

    @property
    def load(self) -> int:
        return self._inflight

    def prepare(self, prompt: Prompt) -> Prepared:
        return Prepared(prompt, None, 0)  # the upstream tokenizes and enforces its own context

    async def stream(self, prepared: Prepared, params: SamplingParams) -> AsyncIterator[Piece | Finished]:
        import openai

        kwargs: dict[str, Any] = {"model": self.model, "max_tokens": params.max_tokens, "temperature": params.temperature,
                                  "top_p": params.top_p, "n": params.n, "stream": True,
                                  "stream_options": {"include_usage": True}}
        if params.seed is not None:
            kwargs["seed"] = params.seed
        if params.stop:
            kwargs["stop"] = params.stop
        chat = prepared.prompt.messages is not None
        if params.logprobs:
            kwargs.update({"logprobs": True, "top_logprobs": params.top_logprobs} if chat else {"logprobs": params.top_logprobs or 1})
        counts = [0] * params.n
        finished: dict[int, str] = {}
        self._inflight += 1
        try:
            if chat:
                stream = await self.client.chat.completions.create(messages=prepared.prompt.messages, **kwargs)
            else:
                stream = await self.client.completions.create(prompt=prepared.prompt.text or "", **kwargs)
            usage = None
            async with stream:
                async for chunk in stream:
                    usage = getattr(chunk, "usage", None) or usage
                    for choice in chunk.choices:
                        text, entries = _delta(choice, chat)
                        if text or entries:
                            counts[choice.index] += max(1, len(entries))
                            yield Piece(choice.index, text, entries[0] if entries else None)
                            for extra in entries[1:]:
                                yield Piece(choice.index, "", extra)
                        if choice.finish_reason:
                            finished[choice.index] = choice.finish_reason
            if usage is not None and params.n == 1:
                counts[0] = usage.completion_tokens
            for i in range(params.n):
                yield Finished(i, finished.get(i, "stop"), counts[i])
        except openai.APIStatusError as e:
            status = e.status_code if 400 <= e.status_code < 500 else 502
            raise BackendError(f"upstream {self.endpoint} answered {e.status_code}: {_message(e)}", status, "upstream_error") from None
        except openai.APIConnectionError as e:
            raise BackendError(f"upstream {self.endpoint} unreachable: {e}", 502, "upstream_unreachable") from None
        finally:
            self._inflight -= 1


def _delta(choice: Any, chat: bool) -> tuple[str, list[dict[str, Any]]]:
    """A streamed choice's text and its per-token log-probability entries (chat format; none for completions)."""
    if not chat:
        return choice.text or "", []
    content = getattr(getattr(choice, "logprobs", None), "content", None) or []
    return (choice.delta.content or "") if choice.delta else "", [c.model_dump() for c in content]


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        return str((body.get("error") or body).get("message", body)) if isinstance(body.get("error", body), dict) else str(body)
    return str(e)


def build_upstream(settings: Any) -> tuple[OpenAIUpstreamBackend, ModelIdentity]:
    if not settings.model:
        raise BackendError("backend openai needs the model name at the upstream: medtune serve NAME --backend openai --endpoint URL", 500)
    served = settings.served_name or settings.model
    fmt = settings.reasoning_format if settings.reasoning_format != "auto" else "sections"
    backend = OpenAIUpstreamBackend(settings.endpoint, settings.model, served_name=served,
                                    api_key=os.environ.get(settings.upstream_key_env), timeout=settings.request_timeout_s,
                                    parallel=settings.slots, reasoning_format=fmt,
                                    context_length=settings.context_length or 0)
    return backend, ModelIdentity(served, "openai", settings.endpoint, None, None)
