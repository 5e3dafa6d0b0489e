"""The issue's first-user path: `medtune synth --out D && medtune train -c configs/quickstart.yaml --data D train.max_steps=2`.

A synth folder is accepted wherever records are expected (its manifest says which file holds them:
``medtune.data.contract``); the tiny model stands in for SmolLM2 (appended override)."""

from __future__ import annotations

import json

from recipe_helpers import CONFIGS, run_literally


def test_synth_folder_then_train_with_the_quickstart_recipe(tmp_path, tiny_model_dir):
    (tmp_path / "configs").symlink_to(CONFIGS)
    synth = run_literally("medtune synth --n 8 --out D", [], tmp_path)
    assert synth.returncode == 0, synth.stderr[-2000:]
    assert {"records.jsonl", "cases.jsonl"} <= {p.name for p in (tmp_path / "D").iterdir()}
    train = run_literally("medtune train -c configs/quickstart.yaml --data D train.max_steps=2",
                          [f"model.base={tiny_model_dir}", "data.max_length=1024", "--out", "run", "--quiet"], tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["steps"] == 2 and manifest["examples"]["train"] > 0
    assert [k.rsplit("/", 1)[-1] for k in manifest["data_files"]] == ["records.jsonl"]  # not cases.jsonl or stats.json
