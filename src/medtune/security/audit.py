"""The audit log: append-only JSONL, hash-chained, with Ed25519-signed checkpoints; fail closed.

Each line is one canonical JSON object (sorted keys, no spaces) carrying ``seq``, ``prev`` (the
previous line's ``hash``) and ``hash`` = SHA-256 of the line without ``hash``. Line 0 is a header
naming the log id and the signing key. Every ``checkpoint_every`` events (or
``checkpoint_seconds``), and on close, a checkpoint line signs the chain head with the Ed25519
key kept outside the log folder; the latest checkpoint is also copied to a head file beside that
key, so a log cut back past it is detected (RFC 6962's signed tree heads play the same role).

Sessions (format 2): each server session opens with a checkpoint marked ``"session": "open"`` and a
clean close writes one marked ``"session": "close"``, so any line after a closing checkpoint other
than a new opening one was not written by the server and fails verification. Events after the last
checkpoint are unsigned. When a server finds such a tail left by a crash (the last checkpoint is not
a closing one), it adopts it but its opening checkpoint records the range, ``"adopted": [first,
last]``: the tail stays reported as unsigned, never vouched for by a later signature. Format-1 logs
(no session marks) still verify and are continued in format 2.

Events hold no text: request and response text enter as HMAC-SHA256 digests under a key kept
outside the log folder (a plain hash of a short text could be brute-forced), PHI as type counts.
``record`` returns only after the line is written and fsynced; any failure raises
:class:`AuditError` and the server fails the request. One process writes a log (``flock``); a
threading lock orders writers inside it, and ``arecord`` runs the write off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from ..utils.io import fsync_path
from . import SecurityError
from .keyfiles import load_or_create_secret, load_or_create_signing_key, write_private
from .phi.types import PhiType

log = logging.getLogger(__name__)
FORMAT = 2  # 2: checkpoints mark session open/close and adopted crash tails; 1 still verifies
GENESIS = "0" * 64
LOG_NAME = "audit.jsonl"
HEX64 = r"^[0-9a-f]{64}$"


class AuditError(SecurityError):
    """The audit log cannot be written or does not verify; the server must refuse the request."""


class AuditEvent(BaseModel):
    """One request, as the audit log sees it: identifiers, digests and counts, never text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str | None = Field(None, pattern=r"^[0-9a-f]{12}$", description="Key id (None: no valid key).")
    role: Literal["clinician", "auditor", "admin", "monitor"] | None = None
    method: str = Field("POST", pattern=r"^[A-Z]{3,7}$")
    route: str = Field(pattern=r"^/[A-Za-z0-9_./{}-]{0,127}$", description="Route template, no query string.")
    request_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    input_hmac: str | None = Field(None, pattern=HEX64)
    output_hmac: str | None = Field(None, pattern=HEX64)
    phi: dict[PhiType, int] = Field(default_factory=dict, description="PHI types found in the input, with counts.")
    model_sha256: str | None = Field(None, pattern=HEX64)
    status: int = Field(ge=100, le=599)
    latency_ms: float = Field(ge=0)
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)


def canonical(obj: dict[str, Any]) -> bytes:
    """The one serialization that is hashed, signed and written."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def checkpoint_body(entry: dict[str, Any]) -> bytes:
    """What a checkpoint's signature covers: everything but the signature and the hash."""
    return canonical({k: v for k, v in entry.items() if k not in ("signature", "hash")})


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def head_path_for(signing_key_path: str | Path) -> Path:
    p = Path(signing_key_path).expanduser()
    return p.with_name(p.name + ".head.json")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class AuditLog:
    """Writer of one audit log file. Use :meth:`open_from_settings` in the server."""

    def __init__(self, path: str | Path, hmac_key: bytes, signing_key: Ed25519PrivateKey, head_path: str | Path,
                 checkpoint_every: int = 64, checkpoint_seconds: float = 300.0):
        self.path, self.head_path = Path(path).expanduser(), Path(head_path).expanduser()
        self._hmac_key, self._signing_key = hmac_key, signing_key
        self._every, self._seconds = checkpoint_every, checkpoint_seconds
        self._lock = threading.Lock()
        self._broken: str | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise AuditError(f"{self.path}: another process is writing this audit log") from None
            raise
        try:
            self._size = os.fstat(self._fd).st_size
            if self._size == 0:
                self._start_new(created)
            else:
                self._resume()
        except BaseException:
            os.close(self._fd)
            raise

    @classmethod
    def open_from_settings(cls, section: Any) -> AuditLog:
        """From a ``SecuritySection``: log in ``audit_dir``, keys (created on first use) outside it."""
        return cls(Path(section.audit_dir).expanduser() / LOG_NAME, load_or_create_secret(section.audit_hmac_key),
                   load_or_create_signing_key(section.audit_signing_key), head_path_for(section.audit_signing_key),
                   section.audit_checkpoint_every, section.audit_checkpoint_seconds)

    # ------------------------------------------------------------------ state
    def _start_new(self, created: bool) -> None:
        self.log_id, self._seq, self._prev, self._events = secrets.token_hex(8), 0, GENESIS, 0
        self._since_checkpoint, self._checkpoint_at = 0, time.monotonic()
        self._append({"type": "header", "format": FORMAT, "log_id": self.log_id,
                      "signer": key_fingerprint(self._signing_key.public_key()), "hmac_key_id": self._hmac_key_id()})
        if created:
            fsync_path(self.path.parent)
        self._checkpoint("open")  # signs the header and points the head file at this log from the start

    def _resume(self) -> None:
        from .audit_verify import verify_log

        if not self.head_path.exists():
            log.warning("audit head file %s is missing: a cut of %s past its last checkpoint cannot be checked "
                        "now; the next checkpoint writes it again", self.head_path, self.path)
        report = verify_log(self.path, self._signing_key.public_key(), self.head_path if self.head_path.exists() else None)
        if not report.ok:
            raise AuditError(f"{self.path} does not verify, refusing to append to it: {report.problems[0]} "
                             "(keep it as evidence; move it aside to start a new log)")
        if report.hmac_key_id != self._hmac_key_id():
            raise AuditError(f"{self.path} was written with another HMAC key than the configured audit_hmac_key")
        # verify_log has refused any line after a closing checkpoint: an unsigned tail here was left by
        # a session that never closed (a crash, a kill). Nothing vouches for it, so it is adopted only
        # as unsigned: this session's opening checkpoint records its range, and no later signature
        # counts it as the server's own.
        adopted = None
        if report.unsigned_events:
            adopted = [report.entries - report.unsigned_events, report.entries - 1]
            log.warning("audit log %s was not closed by its last server (crash?): %d events at seq %d-%d after its "
                        "last checkpoint are unsigned; they are kept and recorded as not vouched for",
                        self.path, report.unsigned_events, *adopted)
        elif report.closed is False:
            log.warning("audit log %s was not closed by its last server (crash?); no event is unsigned", self.path)
        self.log_id, self._seq, self._prev = report.log_id, report.entries, report.last_hash
        self._events, self._since_checkpoint = report.events, report.unsigned_events
        self._checkpoint("open", adopted)

    def _hmac_key_id(self) -> str:
        """Names the HMAC key without revealing it, so a log is never continued under another key."""
        return self.digest("medtune-audit-key-id")[:16]

    # ------------------------------------------------------------------ writing
    def digest(self, text: str | bytes) -> str:
        """Keyed HMAC-SHA256 of a text (hex): equal texts are linkable, the text is not recoverable."""
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        return hmac.new(self._hmac_key, data, hashlib.sha256).hexdigest()

    def _append(self, fields: dict[str, Any]) -> dict[str, Any]:
        if self._broken:
            raise AuditError(f"{self.path}: audit log unusable after an earlier write failure ({self._broken})")
        entry = {**fields, "seq": self._seq, "time": _now(), "prev": self._prev}
        if entry["type"] == "checkpoint":
            entry["signature"] = base64.b64encode(self._signing_key.sign(checkpoint_body(entry))).decode("ascii")
        entry["hash"] = entry_hash(entry)
        line = canonical(entry) + b"\n"
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as e:
            self._rollback(e)
            raise AuditError(f"{self.path}: audit write failed ({e}); the request must fail") from e
        self._size += len(line)
        self._seq, self._prev = self._seq + 1, entry["hash"]
        return entry

    def _rollback(self, err: OSError) -> None:
        """Cut a torn line off so the chain stays valid; if even that fails, refuse all later writes."""
        try:
            os.ftruncate(self._fd, self._size)
            os.fsync(self._fd)
        except OSError:
            self._broken = str(err)

    def record(self, event: AuditEvent) -> dict[str, Any]:
        """Append ``event``; returns after fsync. Raises :class:`AuditError` on any failure."""
        if not isinstance(event, AuditEvent):
            raise AuditError(f"expected an AuditEvent, got {type(event).__name__}")
        fields = {"type": "event", **event.model_dump(mode="json")}
        with self._lock:
            entry = self._append(fields)
            self._events += 1
            self._since_checkpoint += 1
            due = time.monotonic() - self._checkpoint_at >= self._seconds
            if self._since_checkpoint >= self._every or due:
                self._checkpoint()
        return entry

    async def arecord(self, event: AuditEvent) -> dict[str, Any]:
        """``record`` from async code: the write and fsync run in a worker thread."""
        return await asyncio.to_thread(self.record, event)

    def _checkpoint(self, session: Literal["open", "close"] | None = None, adopted: list[int] | None = None) -> dict[str, Any]:
        """Sign the chain head; ``session`` marks a session's first or last checkpoint, ``adopted`` the
        seq range of a crashed session's unsigned tail that an opening checkpoint takes over unsigned."""
        fields: dict[str, Any] = {"type": "checkpoint", "log_id": self.log_id, "events": self._events}
        if session:
            fields["session"] = session
        if adopted:
            fields["adopted"] = adopted
        entry = self._append(fields)
        head = {k: v for k, v in entry.items() if k != "type"}  # every signed field, to check the signature
        write_private(self.head_path, (json.dumps({**head, "log": str(self.path)}, indent=2) + "\n").encode())
        self._since_checkpoint, self._checkpoint_at = 0, time.monotonic()
        return entry

    def checkpoint(self) -> dict[str, Any]:
        with self._lock:
            return self._checkpoint()

    def close(self) -> None:
        """Sign what is unsigned with a closing checkpoint (nothing may follow it), then release the file."""
        with self._lock:
            if self._fd < 0:
                return
            try:
                if not self._broken:
                    self._checkpoint("close")
            finally:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
