"""`medtune serve` end to end as a process (run_server): it serves only with a key, logs what it enforces,
stops on SIGTERM with a final signed checkpoint, and `medtune audit verify` then accepts the log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from medtune.security.keys import KeyStore

SRC = Path(__file__).parents[3] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_medtune_serve_process_with_keys_audit_and_log_file(tiny_model_dir, tmp_path):
    secrets = tmp_path / "secrets"
    env = {**os.environ, "PYTHONPATH": str(SRC), "MEDTUNE_SECURITY__AUDIT_HMAC_KEY": str(secrets / "hmac.key"),
           "MEDTUNE_SECURITY__AUDIT_SIGNING_KEY": str(secrets / "signing.pem"), "MEDTUNE_SECURITY__PHI_PRESIDIO": "false"}
    key, _ = KeyStore(secrets / "keys.json").create("dr-cli", "clinician")
    port, log_file = free_port(), tmp_path / "logs" / "serve.log"
    cmd = [sys.executable, "-m", "medtune", "serve", str(tiny_model_dir), "--port", str(port), "--slots", "2",
           "--keys-file", str(secrets / "keys.json"), "--audit-dir", str(tmp_path / "audit"), "--log-file", str(log_file)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "medtune serve did not start"
            time.sleep(0.3)
        body = {"model": tiny_model_dir.name, "messages": [{"role": "user", "content": "Patient: Ana Reyes. Fever?"}],
                "max_tokens": 3}
        assert httpx.post(url + "/v1/chat/completions", json=body).status_code == 401
        ok = httpx.post(url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert ok.status_code == 200, ok.text
        assert ok.headers["content-security-policy"].startswith("default-src 'self'")
    finally:
        proc.send_signal(signal.SIGTERM)  # what a service manager sends
        proc.wait(60)
    # uvicorn re-raises the signal once its graceful shutdown is done, so the status says "ended by SIGTERM"
    assert proc.returncode in (0, -signal.SIGTERM), proc.stderr.read()[-3000:]
    log = log_file.read_text()
    assert "medtune.serve: stopped" in log and "Application shutdown complete" in log
    assert "security: 1 active API key(s)" in log and "PHI policy redact" in log and "Reyes" not in log
    verify = subprocess.run([sys.executable, "-m", "medtune", "audit", "verify", str(tmp_path / "audit"),
                             "--public-key", str(secrets / "signing.pem"), "--head", str(secrets / "signing.pem.head.json")],
                            env=env, capture_output=True, text=True, timeout=120)
    output = " ".join(verify.stdout.split())  # events: the /health that found it up, the 401, the 200
    assert verify.returncode == 0 and "3 events" in output and "0 events after the last one" in output, output
