"""``SecurityGate``: every security step of one request, in the order the server must call them.

The app builds one gate at startup (``SecurityGate.from_settings``) and, per request
(``medtune.serve.secure`` wires each call into the server)::

    gate.check_body_size(content_length)            # 413, before the body is read
    principal = gate.authenticate(authorization, client_host)   # 401 (429 after repeated failures)
    gate.authorize(principal, route_class)          # 403, before the body is read
    gate.admit(principal)                           # 429 rate limits, before the body is read
    gate.check_caps(body)                           # 422 bounds (n, samples, stop, ...) of the parsed body
    screened = gate.screen(messages or prompt)      # PHI policy: redacted input, or 422 naming types
    ... context check, max_tokens clamp (the gateway) -> queue -> backend ...
    gate.record(...)                                # audit event, fsynced
    gate.charge(principal, completion_tokens)       # the generated tokens count against the key

Every refusal is a :class:`SecurityError` subclass with ``status`` (and ``headers()``); the app
turns it into an OpenAI-format error. ``record`` is called for refused requests too, so the
audit log holds exactly one event per request. If ``record`` raises, answer 503: fail closed.
"""

from __future__ import annotations

import asyncio
import logging
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
                 detector: PhiDetector, tls: bool, model_sha256: str | None = None, cors: dict[str, Any] | None = None):
        self.keys, self.limiter, self.caps, self.audit = keys, limiter, caps, audit
        self.phi_policy, self.detector, self.model_sha256 = phi_policy, detector, model_sha256
        self.tls, self.cors = tls, cors  # cors: CORSMiddleware arguments, or None (same origin only)
        self.headers = security_headers(tls)

    @classmethod
    def from_settings(cls, section: Any, host: str, model_sha256: str | None = None) -> SecurityGate:
        """Check the transport (refuses a non-loopback bind without TLS), open the key store and the audit log."""
        tls = check_bind(host, section.tls_cert, section.tls_key, section.allow_plaintext)
        cors = cors_options(section.cors_origins, section.cors_allow_credentials)
        keys = KeyStore(section.keys_file)  # a malformed store refuses to start before the log is opened
        return cls(keys, RateLimiter.from_section(section), Caps.from_section(section),
                   AuditLog.open_from_settings(section), section.phi_policy, default_detector(section.phi_presidio),
                   tls, model_sha256, cors)

    # ------------------------------------------------------------------ before the backend
    def check_body_size(self, content_length: int | None) -> None:
        check_body_size(content_length, self.caps)

    def authenticate(self, authorization: str | None, client: str) -> Principal:
        """The key's principal; 401 without a valid key. Only a presented key that fails counts
        against the address (a page loaded before its user typed a key is not a guess)."""
        self.limiter.check_client(client)
        token = bearer_token(authorization)
        principal = self.keys.authenticate(token)
        if principal is None:
            if token is not None:
                self.limiter.auth_failed(client)
            raise AuthError(401, "missing, unknown or revoked API key (send Authorization: Bearer <key>)")
        return principal

    def authorize(self, principal: Principal, route_class: RouteClass | None) -> None:
        """403 unless the key's role may use this class of route; a route without a class refuses every role."""
        if route_class is None:
            raise AuthError(403, "this route has no access class, so no role may use it (deny by default)")
        if not principal.may(route_class):
            raise AuthError(403, f"role {principal.role.value} may not use {route_class.value} routes")

    def admit(self, principal: Principal) -> None:
        """Count one request against the key: 429 over its request or generated-token rate.

        Called before the body is read, so every request the key's role may make counts, one whose
        body does not parse or is over a cap too (reading and refusing it cost the server all the same)."""
        self.limiter.admit(principal.key_id)

    def check_caps(self, body: Mapping[str, Any]) -> None:
        """422 for a parameter of the parsed body over its cap (``n``, ``samples``, ``stop``, ...)."""
        apply_caps(body, self.caps)

    def screen(self, content: str | list[dict[str, Any]]) -> Screened:
        if isinstance(content, str):
            res = apply_phi_policy(content, self.phi_policy, self.detector)
            return Screened(res.text, res.counts)
        messages, counts = apply_to_messages(content, self.phi_policy, self.detector)
        return Screened(messages, counts)

    # ------------------------------------------------------------------ after the backend
    def record(self, *, principal: Principal | None, method: str, route: str, request_id: str, status: int,
               latency_s: float, input_text: str | None = None, output_text: str | None = None,
               phi: Mapping[str, int] | None = None, prompt_tokens: int = 0, completion_tokens: int = 0) -> dict:
        """Append the audit event; returns after it is fsynced. Raises ``AuditError``: answer 503."""
        event = AuditEvent(
            key_id=principal.key_id if principal else None, role=principal.role.value if principal else None,
            method=method, route=route, request_id=request_id, status=status,
            input_hmac=self.audit.digest(input_text) if input_text is not None else None,
            output_hmac=self.audit.digest(output_text) if output_text is not None else None,
            phi=dict(phi or {}), model_sha256=self.model_sha256, latency_ms=round(max(0.0, latency_s) * 1000, 3),
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        return self.audit.record(event)

    async def arecord(self, **kwargs: Any) -> dict:
        """``record`` from async code: the write and its fsync run in a worker thread."""
        return await asyncio.to_thread(self.record, **kwargs)

    def charge(self, principal: Principal | None, completion_tokens: int) -> None:
        """Count generated tokens against the key's per-minute budget."""
        if principal is not None and completion_tokens:
            self.limiter.charge_tokens(principal.key_id, completion_tokens)

    def close(self) -> None:
        """Sign what is unsigned (a final checkpoint) and release the log."""
        self.audit.close()
