"""A core install (no extras) runs synth, data, train and eval, and the security commands (keys,
phi scan, audit verify) that need no server; features that need an extra say which one in one line.

The commands run in a fresh interpreter where every optional module (utils/extras.py EXTRA_OF:
llama_cpp, openai, fastapi, uvicorn, bitsandbytes, vllm, playwright) is blocked before medtune is
imported: ``sys.modules[name] = None`` is Python's own switch for "this import fails", and
``importlib.util.find_spec`` then answers None exactly as for a package that is not installed
(a meta-path finder that raised instead would also break the availability probes of
transformers and accelerate, which a real core install does not).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from medtune.utils.extras import EXTRA_OF

REPO = Path(__file__).resolve().parents[3]

DRIVER = r"""
import json, sys
for name in json.loads(sys.argv[1]):
    sys.modules[name] = None
from typer.testing import CliRunner
from medtune.cli.main import app
runner = CliRunner()
for label, args in json.loads(sys.argv[2]):
    res = runner.invoke(app, args)
    exc = res.exception if not isinstance(res.exception, SystemExit) else None
    print(json.dumps({"label": label, "code": res.exit_code, "output": res.output,
                      "exception": repr(exc) if exc else None}), flush=True)
leaked = sorted(name for name in json.loads(sys.argv[1]) if sys.modules.get(name) is not None)
print(json.dumps({"label": "leaked", "modules": leaked}))
"""


def _run_core(commands: list[tuple[str, list[str]]], cwd: Path) -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(sorted(EXTRA_OF)), json.dumps(commands)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {r["label"]: r for r in rows}


def test_core_commands_run_without_extras_and_extras_are_one_line_hints(tiny_model_dir, tmp_path):
    synth, run, ev = tmp_path / "synth", tmp_path / "run", tmp_path / "eval"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"base": str(tiny_model_dir)}, "data": {"max_length": 1024},
                                   "train": {"max_steps": 2, "batch_size": 2, "lora": {"r": 2, "alpha": 4}}}))
    records = str(synth / "records.jsonl")
    (tmp_path / "model.gguf").write_bytes(b"GGUF" + bytes(60))  # exists; loading it needs the gguf extra
    commands = [
        ("synth", ["synth", "--n", "6", "--seed", "1", "--tasks", "mcq", "--out", str(synth)]),
        ("data", ["data", "import", records, "--out", str(tmp_path / "imported")]),
        ("train", ["train", "-c", str(cfg), "--data", records, "--out", str(run), "--quiet"]),
        ("eval", ["eval", "run", str(run), "-b", records, "--protocol", "loglik", "--limit", "3", "--out", str(ev),
                  "--device", "cpu"]),
        ("gguf-eval", ["eval", "run", str(tmp_path / "model.gguf"), "--backend", "llamacpp", "-b", records,
                       "--protocol", "cot", "--limit", "1", "--out", str(tmp_path / "e2")]),
        ("openai-eval", ["eval", "run", "served", "--backend", "openai", "--endpoint", "http://127.0.0.1:9/v1",
                         "-b", records, "--protocol", "cot", "--limit", "1", "--out", str(tmp_path / "e3")]),
        ("k-quant", ["export", str(run), "--gguf", "q4_k_m", "--out", str(tmp_path / "export")]),
        ("teacher", ["synth", "--n", "2", "--out", str(tmp_path / "s2"), "--teacher", "http://127.0.0.1:9/v1",
                     "--teacher-model", "m"]),
    ]
    got = _run_core(commands, tmp_path)
    for label in ("synth", "data", "train", "eval"):
        assert got[label]["code"] == 0 and got[label]["exception"] is None, got[label]["output"][-1500:]
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    (summary,) = ev.glob("*/summary.json")  # one benchmark, one protocol
    assert json.loads(summary.read_text())
    hints = {"gguf-eval": "pip install 'medtune[gguf]'", "openai-eval": "pip install 'medtune[serve]'",
             "k-quant": "pip install 'medtune[gguf]'", "teacher": "pip install 'medtune[serve]'"}
    for label, hint in hints.items():
        r = got[label]
        assert r["code"] == 2 and r["exception"] is None, r
        assert hint in r["output"] and "Traceback" not in r["output"], r
    assert got["leaked"]["modules"] == []  # nothing imported an optional module behind the block's back


def test_security_commands_run_without_the_serve_extra(tmp_path):
    from medtune.security.audit import AuditEvent, AuditLog, head_path_for
    from medtune.security.keyfiles import load_or_create_secret, load_or_create_signing_key

    signing = tmp_path / "k" / "signing.pem"
    with AuditLog(tmp_path / "log" / "audit.jsonl", load_or_create_secret(tmp_path / "k" / "hmac"),
                  load_or_create_signing_key(signing), head_path_for(signing)) as log:
        log.record(AuditEvent(route="/v1/models", method="GET", request_id="r1", status=200, latency_ms=1.0))
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": 1, "text": "Seen by Dr. Ana Reyes on 03/14/2021."}) + "\n")
    commands = [
        ("keys", ["keys", "create", "--name", "a", "--role", "admin", "--store", str(tmp_path / "keys.json")]),
        ("phi", ["phi", "scan", str(src), "--out", str(out), "--no-presidio"]),
        ("audit", ["audit", "verify", str(tmp_path / "log"), "--public-key", f"{signing}.pub",
                   "--head", str(head_path_for(signing))]),
    ]
    got = _run_core(commands, tmp_path)
    for label, _ in commands:
        assert got[label]["code"] == 0 and got[label]["exception"] is None, got[label]
    assert got["keys"]["output"].strip().splitlines()[-1].startswith("mt_")  # the key, after the notice
    assert json.loads(out.read_text())["redacted"] == "Seen by Dr. [NAME] on [DATE]."
    assert "verified" in got["audit"]["output"]
    assert got["leaked"]["modules"] == []
