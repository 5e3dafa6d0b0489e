"""Per-key rate limits (``limits`` package, moving window, memory storage) and request caps.

Pure classes and functions the app calls; each refusal is a :class:`LimitError` carrying the
HTTP status, the field it concerns and, for 429, the ``Retry-After`` seconds.

Generated tokens are only known after a request ran, so the token limit works in two steps: a
request is admitted while the key's window still has budget (``admit``), and its tokens are
charged when it finishes (``charge_tokens``). One request can therefore overshoot the budget by at
most its own ``max_tokens`` (bounded by ``serve.max_tokens_ceiling``); the next request then waits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from . import SecurityError


class LimitError(SecurityError):
    """A request over a limit: ``status`` (400/413/422/429), the ``field`` and ``retry_after`` seconds."""

    def __init__(self, status: int, message: str, field: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.field, self.retry_after = status, field, retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


@dataclass(frozen=True)
class Caps:
    max_body_bytes: int = 1_048_576
    max_n: int = 4
    max_top_logprobs: int = 5
    max_stop_sequences: int = 4
    max_stop_chars: int = 64
    max_messages: int = 64

    @classmethod
    def from_section(cls, section: Any) -> Caps:
        """From a ``SecuritySection`` (field names are the same)."""
        return cls(**{name: getattr(section, name) for name in cls.__dataclass_fields__})


class RateLimiter:
    """Requests/min and generated tokens/min per key id; failed authentications/min per client address."""

    def __init__(self, requests_per_minute: int, tokens_per_minute: int, auth_failures_per_minute: int = 10,
                 window_seconds: int = 60):
        self._window = window_seconds
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._requests = RateLimitItemPerSecond(requests_per_minute, window_seconds, namespace="requests")
        self._tokens = RateLimitItemPerSecond(tokens_per_minute, window_seconds, namespace="tokens")
        self._auth = RateLimitItemPerSecond(auth_failures_per_minute, window_seconds, namespace="authfail")

    @classmethod
    def from_section(cls, section: Any) -> RateLimiter:
        return cls(section.requests_per_minute, section.tokens_per_minute, section.auth_failures_per_minute)

    def _retry_after(self, item: RateLimitItemPerSecond, ident: str) -> int:
        reset = self._limiter.get_window_stats(item, ident).reset_time
        return max(1, math.ceil(reset - time.time()))

    def admit(self, key_id: str) -> None:
        """Count one request for ``key_id``; raise 429 when its request or token window is spent."""
        if not self._limiter.test(self._tokens, key_id):
            raise LimitError(429, f"generated-token limit of {self._tokens.amount} per {self._window}s reached for this key",
                             "tokens_per_minute", self._retry_after(self._tokens, key_id))
        if not self._limiter.hit(self._requests, key_id):
            raise LimitError(429, f"request limit of {self._requests.amount} per {self._window}s reached for this key",
                             "requests_per_minute", self._retry_after(self._requests, key_id))

    def charge_tokens(self, key_id: str, generated: int) -> None:
        """Record ``generated`` tokens (capped at what the window still holds)."""
        remaining = self._limiter.get_window_stats(self._tokens, key_id).remaining
        cost = min(int(generated), remaining)
        if cost > 0:
            self._limiter.hit(self._tokens, key_id, cost=cost)

    def check_client(self, client: str) -> None:
        """Before checking a key: 429 when ``client`` failed authentication too often (no KDF work then)."""
        if not self._limiter.test(self._auth, client):
            raise LimitError(429, "too many failed authentications from this address", "auth_failures_per_minute",
                             self._retry_after(self._auth, client))

    def auth_failed(self, client: str) -> None:
        self._limiter.hit(self._auth, client)


def check_body_size(size: int | None, caps: Caps) -> None:
    """413 when a declared Content-Length (or the bytes read so far) exceed the cap."""
    if size is not None and size > caps.max_body_bytes:
        raise LimitError(413, f"request body of {size} bytes is over the limit of {caps.max_body_bytes} bytes", "body")


def _int_field(body: Mapping[str, Any], name: str, low: int, high: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise LimitError(422, f"`{name}` must be an integer", name)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise LimitError(422, f"`{name}` is {value}; it must be {bound}", name)
    return value


def _check_stop(stop: Any, caps: Caps) -> None:
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise LimitError(422, "`stop` must be a string or a list of strings", "stop")
    if len(stops) > caps.max_stop_sequences:
        raise LimitError(422, f"`stop` has {len(stops)} sequences; at most {caps.max_stop_sequences} are allowed", "stop")
    if any(len(s) > caps.max_stop_chars for s in stops):
        raise LimitError(422, f"a stop sequence is longer than {caps.max_stop_chars} characters", "stop")


def apply_caps(body: Mapping[str, Any], caps: Caps) -> None:
    """Check ``n``, ``samples``, ``top_logprobs``/``logprobs``, ``stop`` and ``messages`` against the caps (422
    naming the field).

    ``samples`` is ``/v1/analyze_case``'s ``n`` (the generations one request asks for), so ``max_n`` caps both.

    ``max_tokens`` is not a cap here: the gateway clamps it to ``serve.max_tokens_ceiling`` and to the
    room the prompt leaves in the context (one clamp, in one place).

    >>> apply_caps({"n": 2, "stop": ["###"]}, Caps())
    >>> apply_caps({"n": 99}, Caps())
    Traceback (most recent call last):
    ...
    medtune.security.limits.LimitError: `n` is 99; it must be between 1 and 4
    """
    _int_field(body, "n", 1, caps.max_n)
    _int_field(body, "samples", 1, caps.max_n)  # only /v1/analyze_case has it (every other body refuses it)
    _int_field(body, "top_logprobs", 0, caps.max_top_logprobs)
    if not isinstance(body.get("logprobs"), bool):  # /v1/completions: logprobs is a count
        _int_field(body, "logprobs", 0, caps.max_top_logprobs)
    if body.get("stop") is not None:
        _check_stop(body["stop"], caps)
    messages = body.get("messages")
    if messages is not None and isinstance(messages, list) and len(messages) > caps.max_messages:
        raise LimitError(422, f"{len(messages)} messages; at most {caps.max_messages} are allowed", "messages")
