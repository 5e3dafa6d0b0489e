"""`medtune keys`, `medtune audit verify` and `medtune phi scan` work without the serve extra."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"

BLOCK_SERVER = textwrap.dedent("""
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"fastapi", "starlette", "uvicorn", "presidio_analyzer"}:
                raise ModuleNotFoundError(f"{name} is blocked: core install")
    sys.meta_path.insert(0, Block())
    sys.argv = ["medtune"] + sys.argv[1:]
    from medtune.cli.main import main
    try:
        main()
    finally:
        assert "fastapi" not in sys.modules
""")


def _medtune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_SERVER, *args], capture_output=True, text=True,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}, timeout=300)


def test_security_commands_without_fastapi(tmp_path):
    store = tmp_path / "keys.json"
    r = _medtune("keys", "create", "--name", "a", "--role", "admin", "--store", str(store))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("mt_")
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": 1, "text": "Seen by Dr. Ana Reyes on 03/14/2021."}) + "\n")
    r = _medtune("phi", "scan", str(src), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["redacted"] == "Seen by Dr. [NAME] on [DATE]."

    from medtune.security.audit import AuditEvent, AuditLog, head_path_for
    from medtune.security.keyfiles import load_or_create_secret, load_or_create_signing_key

    signing = tmp_path / "k" / "signing.pem"
    with AuditLog(tmp_path / "log" / "audit.jsonl", load_or_create_secret(tmp_path / "k" / "hmac"),
                  load_or_create_signing_key(signing), head_path_for(signing)) as log:
        log.record(AuditEvent(route="/v1/models", method="GET", request_id="r1", status=200, latency_ms=1.0))
    r = _medtune("audit", "verify", str(tmp_path / "log"), "--public-key", f"{signing}.pub", "--head", str(head_path_for(signing)))
    assert r.returncode == 0 and "verified" in r.stdout, r.stdout + r.stderr
