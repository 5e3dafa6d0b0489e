"""A run killed with SIGKILL and resumed ends with the adapter of an uninterrupted run."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file
from train_helpers import kill_after_checkpoint, run, train_cmd, write_config, write_records

from medtune.train import checkpoints as ckpt


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, tiny_model_dir):
    data = write_records(tmp_path / "records.jsonl")
    cfg = write_config(tmp_path / "cfg.yaml", tiny_model_dir, max_steps=14, save_steps=2, save_total_limit=3, eval_steps=4)

    straight = tmp_path / "straight"
    run(train_cmd(cfg, data, straight))

    killed = tmp_path / "killed"
    kill_after_checkpoint(train_cmd(cfg, data, killed), killed / "checkpoints")
    assert not (killed / "adapter").exists()
    last = ckpt.list_checkpoints(killed / "checkpoints")[0]
    step = int(last.name.split("-")[1])
    assert step < 14
    # A later checkpoint that was never completed, and a corrupt newest one: both must be skipped.
    (killed / "checkpoints" / "checkpoint-0000013").mkdir()
    (killed / "checkpoints" / "checkpoint-0000013" / "optimizer.pt").write_bytes(b"half-written")
    corrupt = killed / "checkpoints" / "checkpoint-0000012"
    (corrupt).mkdir()
    for f in last.iterdir():
        (corrupt / f.name).write_bytes(f.read_bytes())
    (corrupt / "trainable.safetensors").write_bytes(b"garbage")

    resumed = run(train_cmd(cfg, data, killed, "--resume"))
    assert "skipping checkpoint" in resumed.stderr and "checkpoint-0000013" in resumed.stderr
    assert "checkpoint-0000012: trainable.safetensors does not match" in resumed.stderr
    assert f"resumed from {last}" in resumed.stderr

    a = load_file(straight / "adapter" / "adapter_model.safetensors")
    b = load_file(killed / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff <= 1e-5, f"resumed adapter differs from the uninterrupted one by {diff}"
    assert any((a[k] != 0).any() for k in a if "lora_B" in k)  # it actually trained
    m1, m2 = (json.loads((d / "manifest.json").read_text()) for d in (straight, killed))
    assert m1["best_eval_loss"] == m2["best_eval_loss"] and m1["steps"] == m2["steps"] == 14
    rows = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train_loss" in r] == list(range(1, 15))
    assert torch.isfinite(torch.tensor([r["train_loss"] for r in rows if "train_loss" in r])).all()


def test_pipeline_sigkill_during_train_then_the_same_command_resumes(tmp_path, tiny_model_dir):
    """`medtune run` killed in its train stage, then run again as typed: training resumes from the newest
    complete checkpoint and ends with the adapter of an uninterrupted `medtune run`."""
    import sys

    import yaml

    records = write_records(tmp_path / "records.jsonl")
    base = yaml.safe_load(write_config(tmp_path / "base.yaml", tiny_model_dir, max_steps=14, save_steps=2,
                                       save_total_limit=3, eval_steps=4).read_text())

    def command(name: str) -> list[str]:
        cfg = {**base, "name": name, "run_dir": str(tmp_path / name), "stages": ["data", "train"],
               "data": {**base["data"], "sources": [str(records)]}}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        return [sys.executable, "-m", "medtune", "run", str(tmp_path / f"{name}.yaml"), "--quiet"]

    run(command("straight"))
    killed = tmp_path / "killed"
    kill_after_checkpoint(command("killed"), killed / "train" / "checkpoints")
    assert json.loads((killed / "stages" / "train.json").read_text())["status"] == "running"
    last = ckpt.latest_valid(killed / "train" / "checkpoints")

    resumed = run(command("killed"))
    assert "train: interrupted (running since" in resumed.stdout and f"resuming from {last}" in resumed.stdout
    assert "data: up to date" in resumed.stdout
    a = load_file(tmp_path / "straight" / "train" / "adapter" / "adapter_model.safetensors")
    b = load_file(killed / "train" / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff <= 1e-5, f"resumed adapter differs from the uninterrupted one by {diff}"
    manifest = json.loads((killed / "stages" / "train.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"] and manifest["result"]["resumed_from_step"] >= 6
