"""``SecurityGate``: every security step of one request, in the order the server must call them.

The app builds one gate at startup (``SecurityGate.from_settings``) and, per request::

    gate.check_body_size(content_length)            # 413, before the body is read
    principal = gate.authenticate(authorization, client_host)   # 401 (429 after repeated failures)
    gate.authorize(principal, route_class)          # 403
    max_tokens = gate.admit(principal, body)        # 429 rate limits, 422 bounds; the clamped max_tokens
    screened = gate.screen(body["messages"] or prompt)   # PHI policy: redacted input, or 422 naming types
    max_tokens = fit_to_context(prompt_tokens, max_tokens, ctx)   # 400 (limits.fit_to_context)
    ... queue -> backend ...
    gate.record(...)                                # audit event, fsynced; charges generated tokens

Every refusal is a :class:`SecurityError` subclass with ``status`` (and ``headers()``); the app
turns it into an OpenAI-format error. ``record`` is called for refused requests too, so the
audit log holds exactly one event per request. If ``record`` raises, answer 503: fail closed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import SecurityError
from .audit import AuditEvent, AuditLog
from .keys import KeyStore, Principal, RouteClass
from .limits import Caps, RateLimiter, apply_caps, check_body_size
from .phi.detector import PhiDetector, default_detector
from .phi.policy import apply_phi_policy, apply_to_messages
from .transport import check_bind, cors_options, security_headers

log = logging.getLogger(__name__)


class AuthError(SecurityError):
    """401 (no valid key) or 403 (valid key, wrong role)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="medtune"'} if self.status == 401 else {}


@dataclass
class Screened:
    """Input after the PHI policy: what the model may see, and the PHI counts for the audit event."""

    content: Any
    phi: dict[str, int] = field(default_factory=dict)


def bearer_token(authorization: str | None) -> str | None:
    """The key in ``Authorization: Bearer <key>``, else None.

    >>> bearer_token("Bearer mt_x"), bearer_token("Basic abc"), bearer_token(None)
    ('mt_x', None, None)
    """
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


class SecurityGate:
    def __init__(self, keys: KeyStore, limiter: RateLimiter, caps: Caps, audit: AuditLog, phi_policy: str,
                 detector: PhiDetector, tls: bool, model_sha256: str | None = None):
        self.keys, self.limiter, self.caps, self.audit = keys, limiter, caps, audit
        self.phi_policy, self.detector, self.model_sha256 = phi_policy, detector, model_sha256
        self.headers = security_headers(tls)

    @classmethod
    def from_settings(cls, section: Any, host: str, model_sha256: str | None = None) -> SecurityGate:
        """Check the transport (refuses a non-loopback bind without TLS), open the key store and the audit log."""
        tls = check_bind(host, section.tls_cert, section.tls_key, section.allow_plaintext)
        cors_options(section.cors_origins, section.cors_allow_credentials)
        return cls(KeyStore(section.keys_file), RateLimiter.from_section(section), Caps.from_section(section),
                   AuditLog.open_from_settings(section), section.phi_policy, default_detector(section.phi_presidio),
                   tls, model_sha256)

    # ------------------------------------------------------------------ before the backend
    def check_body_size(self, content_length: int | None) -> None:
        check_body_size(content_length, self.caps)

    def authenticate(self, authorization: str | None, client: str) -> Principal:
        self.limiter.check_client(client)
        principal = self.keys.authenticate(bearer_token(authorization))
        if principal is None:
            self.limiter.auth_failed(client)
            raise AuthError(401, "missing, unknown or revoked API key (send Authorization: Bearer <key>)")
        return principal

    def authorize(self, principal: Principal, route_class: RouteClass) -> None:
        if not principal.may(route_class):
            raise AuthError(403, f"role {principal.role.value} may not use {route_class.value} routes")

    def admit(self, principal: Principal, body: Mapping[str, Any]) -> int:
        max_tokens = apply_caps(body, self.caps)
        self.limiter.admit(principal.key_id)
        return max_tokens

    def screen(self, content: str | list[dict[str, Any]]) -> Screened:
        if isinstance(content, str):
            res = apply_phi_policy(content, self.phi_policy, self.detector)
            return Screened(res.text, res.counts)
        messages, counts = apply_to_messages(content, self.phi_policy, self.detector)
        return Screened(messages, counts)

    # ------------------------------------------------------------------ after the backend
    def record(self, *, principal: Principal | None, method: str, route: str, request_id: str, status: int,
               started: float, input_text: str | None = None, output_text: str | None = None,
               phi: Mapping[str, int] | None = None, prompt_tokens: int = 0, completion_tokens: int = 0) -> dict:
        """Append the audit event (fsynced before returning) and charge the generated tokens.

        ``started`` is ``time.monotonic()`` at the request's start. Raises ``AuditError``: answer 503.
        """
        event = AuditEvent(
            key_id=principal.key_id if principal else None, role=principal.role.value if principal else None,
            method=method, route=route, request_id=request_id, status=status,
            input_hmac=self.audit.digest(input_text) if input_text is not None else None,
            output_hmac=self.audit.digest(output_text) if output_text is not None else None,
            phi=dict(phi or {}), model_sha256=self.model_sha256, latency_ms=round((time.monotonic() - started) * 1000, 3),
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        entry = self.audit.record(event)
        if principal is not None and completion_tokens:
            self.limiter.charge_tokens(principal.key_id, completion_tokens)
        return entry

    async def arecord(self, **kwargs: Any) -> dict:
        import asyncio

        return await asyncio.to_thread(self.record, **kwargs)

    def close(self) -> None:
        self.audit.close()
