"""A small audit log written with fresh keys, shared by the audit tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

from medtune.security.audit import AuditEvent, AuditLog, canonical, entry_hash, head_path_for
from medtune.security.keyfiles import load_or_create_secret, load_or_create_signing_key


def event(i: int, key_id: str = "0123456789ab", **over) -> AuditEvent:
    fields = dict(key_id=key_id, role="clinician", route="/v1/chat/completions", request_id=f"req-{i}",
                  input_hmac="a" * 64, output_hmac="b" * 64, phi={"NAME": 1, "DATE": 2}, model_sha256="c" * 64,
                  status=200, latency_ms=12.5 + i, prompt_tokens=30 + i, completion_tokens=7)
    fields.update(over)
    return AuditEvent(**fields)


def open_log(tmp: Path, every: int = 2, seconds: float = 3600) -> AuditLog:
    secrets_dir = tmp / "secrets"
    signing = secrets_dir / "signing.pem"
    return AuditLog(tmp / "audit" / "audit.jsonl", load_or_create_secret(secrets_dir / "hmac.key"),
                    load_or_create_signing_key(signing), head_path_for(signing), every, seconds)


def paths(tmp: Path) -> dict[str, Path]:
    signing = tmp / "secrets" / "signing.pem"
    return {"log": tmp / "audit" / "audit.jsonl", "pub": Path(str(signing) + ".pub"), "head": head_path_for(signing)}


def crash(log: AuditLog) -> None:
    """Stop writing as a killed server does: the file is released with no closing checkpoint."""
    os.close(log._fd)
    log._fd = -1


def forge_event(log_path: Path, key_id: str = "deadbeef0000") -> int:
    """Append an event the server never wrote, chained to the last line with its hash recomputed (what
    anyone who can write the log folder can do); returns its seq."""
    last = json.loads(log_path.read_bytes().splitlines()[-1])
    entry = {"type": "event", **event(999, key_id=key_id).model_dump(mode="json"), "seq": last["seq"] + 1,
             "time": last["time"], "prev": last["hash"]}
    entry["hash"] = entry_hash(entry)
    with open(log_path, "ab") as f:
        f.write(canonical(entry) + b"\n")
    return entry["seq"]
