"""Request bodies of the OpenAI-compatible routes (pydantic; unknown fields are refused with 400).

Bounds here are what the API itself allows (OpenAI's limits: ``n``, ``top_logprobs`` <= 20, four
stop sequences); per-deployment limits (#14) sit in front of the gateway. Options medtune does
not implement are refused rather than silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .backends.base import SamplingParams

# Seeds every engine takes alike: llama.cpp's sampler (and llama-server behind `--backend openai`) keeps
# a uint32, vLLM an int64, torch's generators a uint64 (the engines here seed sample k with seed + k).
# A negative seed means "random" to llama-server and wraps around in torch: refused, like a larger one.
SEED_MAX = 2**32 - 1
SEED_HELP = f"Seed of the sampled answers (reproducible sampling), 0 to {SEED_MAX}."


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] = Field(description="Text, or a list of text parts (images are not supported).")
    name: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(_Body):
    include_usage: bool = False


class _Sampling(_Body):
    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, description="Answer budget (clamped to the server's ceiling).")
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=16)
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    seed: int | None = Field(None, ge=0, le=SEED_MAX, description=SEED_HELP)
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    user: str | None = None

    @model_validator(mode="after")
    def _unsupported(self) -> _Sampling:
        if self.presence_penalty or self.frequency_penalty:
            raise ValueError("presence_penalty and frequency_penalty are not supported (leave them 0)")
        if self.logit_bias:
            raise ValueError("logit_bias is not supported")
        return self

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1, description="At least one message.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Same as max_tokens (newer OpenAI name).")
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)

    @model_validator(mode="after")
    def _check(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        if not any(m.text().strip() for m in self.messages):
            raise ValueError("every message is empty")
        return self

    def plain_messages(self) -> list[dict[str, Any]]:
        # "developer" is OpenAI's newer name for the system turn; chat templates know "system"
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]

    def sampling(self, max_tokens: int) -> SamplingParams:
        return SamplingParams(max_tokens=max_tokens, temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                              stop=self.stops(), n=self.n, logprobs=self.logprobs, top_logprobs=self.top_logprobs or 0)

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)] = Field(
        description="One prompt (a list holding one string is accepted; batches are not).")
    logprobs: int | None = Field(None, ge=0, le=5, description="Top alternatives per token (legacy completions API).")
    echo: bool = False
    suffix: str | None = None

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, v: bool) -> bool:
        if v:
            raise ValueError("echo is not supported")
        return v

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, v: str | None) -> str | None:
        if v:
            raise ValueError("suffix (fill-in-the-middle) is not supported")
        return v

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def sampling(self, max_tokens: int) -> SamplingParams:
        return SamplingParams(max_tokens=max_tokens, temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                              stop=self.stops(), n=self.n, logprobs=self.logprobs is not None,
                              top_logprobs=self.logprobs or 0)

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens
