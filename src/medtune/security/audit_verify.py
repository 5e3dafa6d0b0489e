"""``verify_log``: check an audit log line by line; ``read_events``: filter it for auditors.

A log verifies when every line is the canonical JSON of its content, ``seq`` counts from 0,
each ``prev`` is the previous line's ``hash``, each ``hash`` is right, every checkpoint's
Ed25519 signature verifies with the trusted public key, the header names that key, and the head
file (the latest checkpoint, kept outside the log folder) is present in the log. So a changed byte,
a deleted, inserted or reordered line, a torn last line, or a cut past the last checkpoint fails.
So does any line after a closing checkpoint (the server's clean close) other than a signed opening
checkpoint: nothing may be appended to a closed log but by the server's next session.

Events after the last checkpoint are reported as unsigned (``unsigned_events``; ``closed`` False:
the server is running or stopped without closing): an attacker who can rewrite the log folder can
drop, change or add them without trace until the next checkpoint (lower ``audit_checkpoint_every``
to shrink that window; 1 signs every event). A tail left so by a crash stays unsigned for good:
the next session's opening checkpoint records its range (``adopted``, ``adopted_events``) and it
is never counted in ``signed_events``.

``read_events`` reads for display, not for proof: a damaged line (no JSON, an event with a field
missing or malformed) is skipped and named (file, line, field), never a crash.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from .audit import (
    FORMAT,
    GENESIS,
    AuditEvent,
    canonical,
    checkpoint_body,
    entry_hash,
    key_fingerprint,
)

log = logging.getLogger(__name__)
LINE_FIELDS = ("type", "seq", "time", "prev", "hash")  # on every line; the rest of an event is an AuditEvent
HEAD_FIELDS = {"log_id", "seq", "time", "events", "prev", "signature", "hash"}


@dataclass
class VerifyReport:
    path: str
    problems: list[str] = field(default_factory=list)
    entries: int = 0
    events: int = 0
    checkpoints: int = 0
    unsigned_events: int = 0
    log_id: str | None = None
    hmac_key_id: str | None = None
    last_hash: str = GENESIS
    head_checked: bool = False
    format: int | None = None
    closed: bool | None = None  # True: ends on a closing checkpoint; False: a session is open (running or crashed); None: no session marks (format 1)
    last_checkpoint: int | None = None
    adopted: list[tuple[int, int]] = field(default_factory=list)  # seq ranges a crashed session left unsigned
    adopted_events: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def signed_events(self) -> int:
        """Events a checkpoint vouches for: neither after the last one nor adopted from a crashed session."""
        return self.events - self.unsigned_events - self.adopted_events


def _parse(raw: bytes, n: int) -> tuple[dict[str, Any] | None, str | None]:
    if not raw.endswith(b"\n"):
        return None, f"line {n}: no final newline (torn write or truncated)"
    try:
        entry = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"line {n}: not a JSON line ({e.__class__.__name__})"
    if not isinstance(entry, dict):
        return None, f"line {n}: not a JSON object"
    try:
        if canonical(entry) + b"\n" != raw:
            return None, f"line {n}: not in canonical form (edited)"
    except (TypeError, ValueError):
        return None, f"line {n}: not serializable"
    return entry, None


def _read_event(entry: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(the event with every field, None) or (None, what is missing or malformed)."""
    try:
        _parse_time(entry["time"])
        event = AuditEvent.model_validate({k: v for k, v in entry.items() if k not in LINE_FIELDS})
    except KeyError:
        return None, "missing field 'time'"
    except ValidationError as e:
        err = e.errors()[0]
        name = ".".join(str(x) for x in err["loc"]) or "?"
        return None, f"missing field {name!r}" if err["type"] == "missing" else f"field {name!r}: {err['msg']}"
    except (TypeError, ValueError):
        return None, f"field 'time': {entry['time']!r} is not an ISO time"
    return {**entry, **event.model_dump(mode="json")}, None


def _check_entry(entry: dict[str, Any], n: int, rep: VerifyReport, key: Ed25519PublicKey) -> str | None:
    kind = entry.get("type")
    if entry.get("seq") != n:
        return f"line {n}: seq {entry.get('seq')!r}, expected {n} (deleted, inserted or reordered entry)"
    if entry.get("prev") != rep.last_hash:
        return f"line {n}: prev does not match the hash of line {n - 1} (chain broken)"
    if entry.get("hash") != entry_hash(entry):
        return f"line {n}: hash does not match its content (edited)"
    if (n == 0) != (kind == "header"):
        return f"line {n}: {'the first line must be the header' if n == 0 else 'a second header'}"
    if rep.closed and not (kind == "checkpoint" and entry.get("session") == "open"):
        return (f"line {n}: {kind} after the closing checkpoint at line {rep.last_checkpoint} with no signed opening "
                "checkpoint before it: appended after the server closed the log, not written by it")
    if kind == "header":
        if entry.get("signer") != key_fingerprint(key):
            return f"line {n}: the log names signing key {entry.get('signer')}, not the trusted key {key_fingerprint(key)}"
        fmt = entry.get("format")
        if type(fmt) is not int or not 1 <= fmt <= FORMAT:
            return f"line {n}: log format {fmt!r}; this version reads formats 1 to {FORMAT}"
        rep.log_id, rep.hmac_key_id, rep.format = entry.get("log_id"), entry.get("hmac_key_id"), fmt
    elif kind == "event":
        _, problem = _read_event(entry)
        if problem:
            return f"line {n}: malformed event ({problem})"
        rep.events += 1
        rep.unsigned_events += 1
    elif kind == "checkpoint":
        try:
            key.verify(base64.b64decode(entry.get("signature", ""), validate=True), checkpoint_body(entry))
        except (InvalidSignature, ValueError):
            return f"line {n}: checkpoint signature does not verify with the trusted key"
        if entry.get("log_id") != rep.log_id or entry.get("events") != rep.events:
            return f"line {n}: checkpoint names log {entry.get('log_id')} with {entry.get('events')} events; expected {rep.log_id} with {rep.events}"
        session = entry.get("session")
        if session not in (None, "open", "close"):
            return f"line {n}: checkpoint with unknown session mark {session!r}"
        # an opening checkpoint after unsigned events (a crashed session's tail) must name them as adopted
        tail = [n - rep.unsigned_events, n - 1] if session == "open" and rep.unsigned_events else None
        if entry.get("adopted") != tail:
            return f"line {n}: checkpoint records adopted events {entry.get('adopted')!r}; the unsigned ones before it are {tail!r}"
        if tail:
            rep.adopted.append((tail[0], tail[1]))
            rep.adopted_events += rep.unsigned_events
        rep.checkpoints += 1
        rep.unsigned_events = 0
        rep.last_checkpoint = n
        if session:
            rep.closed = session == "close"
    else:
        return f"line {n}: unknown entry type {kind!r}"
    return None


def _check_head(head_path: Path, rep: VerifyReport, hashes: dict[int, str], key: Ed25519PublicKey) -> str | None:
    try:
        head = json.loads(head_path.read_text(encoding="utf-8"))
        if not isinstance(head, dict) or not HEAD_FIELDS <= head.keys():
            raise KeyError("a head file field")
        signed = {"type": "checkpoint", **{k: v for k, v in head.items() if k not in ("signature", "hash", "log")}}
        key.verify(base64.b64decode(head["signature"]), checkpoint_body(signed))
    except (OSError, ValueError, KeyError, TypeError, InvalidSignature) as e:
        return f"head file {head_path}: unreadable or not signed by the trusted key ({e.__class__.__name__})"
    if head["log_id"] != rep.log_id:
        return f"head file {head_path} belongs to log {head['log_id']}, this log is {rep.log_id} (log replaced?)"
    if hashes.get(head["seq"]) != head["hash"]:
        return (f"the last signed checkpoint (line {head['seq']}, recorded in {head_path}) is missing or changed: "
                "the log was truncated or rewritten past it")
    rep.head_checked = True
    return None


def verify_lines(lines: Iterable[bytes], public_key: Ed25519PublicKey, head_path: str | Path | None = None,
                 label: str = "<log>") -> VerifyReport:
    """Check raw log lines (each with its newline); the report names the first problem and stops there."""
    rep = VerifyReport(label)
    hashes: dict[int, str] = {}
    for n, raw in enumerate(lines):
        entry, problem = _parse(raw, n)
        problem = problem or _check_entry(entry, n, rep, public_key)
        if problem:
            rep.problems.append(problem)
            return rep
        rep.last_hash, rep.entries = entry["hash"], n + 1
        hashes[n] = entry["hash"]
    if rep.entries == 0:
        rep.problems.append("empty log: no header")
    elif rep.checkpoints == 0:
        rep.problems.append("no signed checkpoint (a log starts with one after its header)")
    elif head_path is not None:
        problem = _check_head(Path(head_path), rep, hashes, public_key)
        if problem:
            rep.problems.append(problem)
    return rep


def verify_log(path: str | Path, public_key: Ed25519PublicKey, head_path: str | Path | None = None) -> VerifyReport:
    """Check the log file at ``path`` (streamed line by line)."""
    with open(path, "rb") as f:
        return verify_lines(f, public_key, head_path, str(path))


def verify_bytes(data: bytes, public_key: Ed25519PublicKey, head_path: str | Path | None = None) -> VerifyReport:
    """Check a log held in memory (splits on newlines only, as a file is read)."""
    return verify_lines(io.BytesIO(data), public_key, head_path)


def _parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def read_events(path: str | Path, since: str | None = None, key_id: str | None = None,
                problems: list[str] | None = None) -> list[dict[str, Any]]:
    """Events (not header or checkpoints), optionally at or after ``since`` (ISO time) and of one key id.

    Raises ``ValueError`` only for a bad ``since``. A damaged line (not JSON, an event with a field
    missing or malformed) is skipped: its file, line (counted from 0, as ``seq``) and problem are
    appended to ``problems``; with no list given, one warning names their count and the first.
    `verify` says whether the log is intact; this lists what is readable."""
    start = _parse_time(since) if since else None
    out: list[dict[str, Any]] = []
    found: list[str] = [] if problems is None else problems
    with open(path, encoding="ascii", errors="replace") as f:
        for n, line in enumerate(f):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry, problem = None, "not a JSON line"
            else:
                problem = None if isinstance(entry, dict) else "not a JSON object"
            if problem is None and entry.get("type") not in ("header", "checkpoint", "event"):
                problem = f"unknown entry type {entry.get('type')!r}"
            if problem is None and entry["type"] == "event":
                entry, problem = _read_event(entry)
                problem = problem and f"damaged event, {problem}"
            if problem:
                found.append(f"{path}: line {n}: {problem}")
                continue
            if entry["type"] != "event" or (key_id and entry.get("key_id") != key_id):
                continue
            if start and _parse_time(entry["time"]) < start:
                continue
            out.append(entry)
    if found and problems is None:
        log.warning("audit log: %d damaged lines skipped, the first: %s (run `medtune audit verify`)", len(found), found[0])
    return out
