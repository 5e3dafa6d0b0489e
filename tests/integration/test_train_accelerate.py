"""`accelerate launch` with two CPU processes (gloo): both ranks train, one adapter is saved."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from train_helpers import run, write_config, write_records

REPO = Path(__file__).resolve().parents[2]


def test_two_process_accelerate_launch(tmp_path, tiny_model_dir):
    data = write_records(tmp_path / "records.jsonl")
    cfg = write_config(tmp_path / "cfg.yaml", tiny_model_dir, max_steps=4, eval_steps=2)
    out = tmp_path / "run"
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    proc = run([accelerate, "launch", "--config_file", str(REPO / "configs/accelerate/cpu_2proc.yaml"),
                "--main_process_port", "0", "-m", "medtune", "train", "-c", str(cfg), "--data", str(data), "--out", str(out),
                "--quiet"], timeout=400)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["hardware"]["processes"] == 2
    per_rank = manifest["tokens_per_rank"]
    assert len(per_rank) == 2 and all(t > 0 for t in per_rank), per_rank
    assert manifest["final_eval_loss"] < manifest["first_eval_loss"]
    assert sorted(p.name for p in out.iterdir() if p.name in ("adapter", "model")) == ["adapter"]
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert not list(out.glob(".adapter.*")), "a second rank's temporary output was left behind"
    assert proc.stdout.count("trained 4 steps") == 1  # only the main process reports
