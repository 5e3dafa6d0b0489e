"""The ``security`` section: keys, audit log, PHI policy, limits, transport. Serve nests it.

Every path is expanded with ``~``. Secrets (key store, HMAC key, signing key) must live outside
``audit_dir``: whoever can rewrite the log must not also hold what proves it untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from .base import Section

PhiPolicyName = Literal["redact", "block", "pass"]


def _inside(child: str, parent: str) -> bool:
    c, p = Path(child).expanduser().resolve(), Path(parent).expanduser().resolve()
    return c == p or p in c.parents


def origin_problem(origin: str) -> str | None:
    """Why ``origin`` is not a valid CORS origin (``scheme://host[:port]``), or None.

    >>> origin_problem("https://ehr.example.org"), origin_problem("https://x.org/path") is not None
    (None, True)
    """
    if origin == "*":
        return None
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{origin!r} is not scheme://host[:port]"
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return f"{origin!r}: an origin has no path, query, fragment or user"
    return None


class SecuritySection(Section):
    # --- identities and keys
    keys_file: str = Field("~/.config/medtune/keys.json",
                           description="API key store: salted scrypt hashes only, file mode 0600 (`medtune keys create` writes it).")
    # --- audit log
    audit_dir: str = Field("~/.local/state/medtune/audit",
                           description="Folder of the append-only, hash-chained audit log (audit.jsonl).")
    audit_hmac_key: str = Field("~/.config/medtune/audit-hmac.key",
                                description="Secret for the HMAC digests of request and response text in audit events; outside audit_dir, created 0600 on first use.")
    audit_signing_key: str = Field("~/.config/medtune/audit-signing.pem",
                                   description="Ed25519 key that signs audit checkpoints; outside audit_dir. Its public half (.pub) and the last checkpoint (.head.json) are written beside it.")
    audit_checkpoint_every: int = Field(64, ge=1, description="Write a signed checkpoint after this many events (1 = after every event).")
    audit_checkpoint_seconds: float = Field(300.0, gt=0, description="Also write one at the first event after this many seconds since the last checkpoint.")
    # --- PHI
    phi_policy: PhiPolicyName = Field("redact", description="Input text with PHI: redact (the model sees [TYPE] placeholders), block (422 naming the types) or pass. PHI never reaches logs or the audit log in any mode.")
    phi_presidio: bool = Field(True, description="Also run Presidio's pattern recognizers when presidio-analyzer is installed (used offline, never downloaded).")
    # --- limits (per key unless said otherwise)
    requests_per_minute: int = Field(60, ge=1, description="Requests per key per minute (moving window); over it: 429 with Retry-After.")
    tokens_per_minute: int = Field(20_000, ge=1, description="Generated tokens per key per minute (moving window); over it: 429 with Retry-After.")
    auth_failures_per_minute: int = Field(10, ge=1, description="Failed authentications per client address per minute before 429 (bounds key guessing and hashing cost).")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body in bytes; larger: 413.")
    max_n: int = Field(4, ge=1, le=64, description="Largest `n` (completions per request) and `/v1/analyze_case` `samples`; larger: 422.")
    max_top_logprobs: int = Field(5, ge=0, le=20, description="Largest `top_logprobs`; larger: 422.")
    max_stop_sequences: int = Field(4, ge=0, le=16, description="Most stop sequences per request; more: 422.")
    max_stop_chars: int = Field(64, ge=1, description="Longest stop sequence in characters; longer: 422.")
    max_messages: int = Field(64, ge=1, description="Most chat messages per request; more: 422.")
    # --- transport
    tls_cert: str | None = Field(None, description="PEM certificate for HTTPS; required (with tls_key) to bind a non-loopback address.")
    tls_key: str | None = Field(None, description="PEM private key for HTTPS (keep it 0600).")
    allow_plaintext: bool = Field(False, description="Allow plain HTTP on a non-loopback address (only behind a TLS reverse proxy on the same host); logged loudly at startup.")
    trusted_proxies: list[str] = Field(default_factory=list, description="Addresses of your reverse proxies (e.g. 127.0.0.1) whose X-Forwarded-For names the client, so per-client limits stay per client behind them; empty = the TCP peer is the client and forwarded headers are ignored (any local process could otherwise pick the address the auth-failure limit counts).")
    cors_origins: list[str] = Field(default_factory=list, description="Browser origins allowed to call the API (scheme://host[:port]); empty = same origin only.")
    cors_allow_credentials: bool = Field(False, description="Let allowed origins send credentials; never together with the origin `*`.")

    @model_validator(mode="after")
    def _consistent(self) -> SecuritySection:
        problems = [p for p in map(origin_problem, self.cors_origins) if p]
        if "*" in self.cors_origins and self.cors_allow_credentials:
            problems.append("cors_origins `*` with cors_allow_credentials: any web site could call the API with the "
                            "user's credentials; list the origins instead")
        if (self.tls_cert is None) != (self.tls_key is None):
            problems.append("give both tls_cert and tls_key, or neither")
        for name in ("keys_file", "audit_hmac_key", "audit_signing_key"):
            if _inside(getattr(self, name), self.audit_dir):
                problems.append(f"{name} is inside audit_dir: keep secrets outside the log folder")
        if problems:
            raise ValueError("; ".join(problems))
        return self
