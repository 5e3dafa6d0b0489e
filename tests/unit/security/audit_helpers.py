"""A small audit log written with fresh keys, shared by the audit tests."""

from __future__ import annotations

from pathlib import Path

from medtune.security.audit import AuditEvent, AuditLog, head_path_for
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
