"""Shared helpers for the training integration tests: a small records file and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from medtune.data.records import Answer, Record

CASES = [
    ("crushing chest pain radiating to the left arm and diaphoresis", "Myocardial infarction"),
    ("a barking cough and inspiratory stridor", "Croup"),
    ("sudden pleuritic chest pain after a long flight", "Pulmonary embolism"),
    ("fever, neck stiffness and photophobia", "Bacterial meningitis"),
]


def write_records(path: Path, n: int = 48) -> Path:
    """Deterministic MCQ records with short reasoning (a few dozen tokens each on the tiny tokenizer)."""
    names = [c[1] for c in CASES]
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            finding, dx = CASES[i % len(CASES)]
            options = dict(zip("ABCD", names[i % 4:] + names[: i % 4]))
            letter = next(k for k, v in options.items() if v == dx)
            rec = Record.create(source="test", task="mcq", question=f"Case {i}: a patient has {finding}. Diagnosis?",
                                options=options, answer=Answer(letter=letter), reasoning=f"Key finding: {finding}.")
            f.write(rec.model_dump_json() + "\n")
    return path


def write_config(path: Path, base: Path, **train: object) -> Path:
    cfg = {"model": {"base": str(base)}, "data": {"max_length": 192, "val_fraction": 0.1},
           "train": {"learning_rate": 3e-3, "batch_size": 2, "logging_steps": 1, "lora": {"r": 4, "alpha": 8}, **train}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def env() -> dict[str, str]:
    """Single-threaded, deterministic CPU runs that never touch the network."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def train_cmd(config: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "medtune", "train", "-c", str(config), "--data", str(data), "--out", str(out), "--quiet", *extra]


def run(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def kill_after_checkpoint(cmd: list[str], checkpoints: Path, min_step: int = 6, timeout: float = 240) -> None:
    """Start ``cmd`` and SIGKILL it once a verified checkpoint of step >= ``min_step`` exists under ``checkpoints``."""
    import signal
    import time

    from medtune.train import checkpoints as ckpt

    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        done = [p for p in ckpt.list_checkpoints(checkpoints) if ckpt.verify(p) is None]
        if done and int(done[0].name.split("-")[1]) >= min_step:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; raise max_steps"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
