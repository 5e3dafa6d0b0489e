"""``verify_log``: check an audit log line by line; ``read_events``: filter it for auditors.

A log verifies when every line is the canonical JSON of its content, ``seq`` counts from 0,
each ``prev`` is the previous line's ``hash``, each ``hash`` is right, every checkpoint's
Ed25519 signature verifies with the trusted public key, the header names that key, and the head
file (the latest checkpoint, kept outside the log folder) is present in the log. So a changed byte,
a deleted, inserted or reordered line, a torn last line, or a cut past the last checkpoint fails.
Events after the last checkpoint are reported as unsigned: an attacker who can rewrite the log
folder can drop them without trace until the next checkpoint (lower ``audit_checkpoint_every``
to shrink that window; 1 signs every event).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .audit import GENESIS, AuditEvent, canonical, checkpoint_body, entry_hash, key_fingerprint


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

    @property
    def ok(self) -> bool:
        return not self.problems


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
    if kind == "header":
        if entry.get("signer") != key_fingerprint(key):
            return f"line {n}: the log names signing key {entry.get('signer')}, not the trusted key {key_fingerprint(key)}"
        rep.log_id, rep.hmac_key_id = entry.get("log_id"), entry.get("hmac_key_id")
    elif kind == "event":
        fields = {k: v for k, v in entry.items() if k not in ("type", "seq", "time", "prev", "hash")}
        try:
            AuditEvent.model_validate(fields)
        except ValueError as e:
            return f"line {n}: malformed event ({str(e).splitlines()[0]})"
        rep.events += 1
        rep.unsigned_events += 1
    elif kind == "checkpoint":
        try:
            key.verify(base64.b64decode(entry.get("signature", ""), validate=True), checkpoint_body(entry))
        except (InvalidSignature, ValueError):
            return f"line {n}: checkpoint signature does not verify with the trusted key"
        if entry.get("log_id") != rep.log_id or entry.get("events") != rep.events:
            return f"line {n}: checkpoint names log {entry.get('log_id')} with {entry.get('events')} events; expected {rep.log_id} with {rep.events}"
        rep.checkpoints += 1
        rep.unsigned_events = 0
    else:
        return f"line {n}: unknown entry type {kind!r}"
    return None


def _check_head(head_path: Path, rep: VerifyReport, hashes: dict[int, str], key: Ed25519PublicKey) -> str | None:
    try:
        head = json.loads(head_path.read_text(encoding="utf-8"))
        signed = {"type": "checkpoint", **{k: head[k] for k in ("log_id", "seq", "time", "events", "prev")}}
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


def read_events(path: str | Path, since: str | None = None, key_id: str | None = None) -> list[dict[str, Any]]:
    """Events (not header or checkpoints), optionally at or after ``since`` (ISO time) and of one key id."""
    start = _parse_time(since) if since else None
    out = []
    with open(path, encoding="ascii", errors="replace") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # `verify` reports it; `show` lists what is readable
            if not isinstance(entry, dict) or entry.get("type") != "event":
                continue
            if key_id and entry.get("key_id") != key_id:
                continue
            if start and _parse_time(entry["time"]) < start:
                continue
            out.append(entry)
    return out
