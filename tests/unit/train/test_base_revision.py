"""model.revision outlives training: the manifest records it, and every reader that falls back from the recorded
base folder to the base's spec (a run moved to another machine) loads that revision, not the Hub's current `main`."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from medtune.config import load_config
from medtune.train import load_trained, train
from medtune.train.load import adapter_base

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))
from train_helpers import write_records  # noqa: E402

COMMON = ["data.max_length=192", "train.batch_size=2", "train.lora.r=4", "train.lora.alpha=8", "train.logging_steps=1",
          "train.eval_steps=0", "train.precision=fp32", "data.contamination=off", "train.max_steps=1"]


def _moved(run: Path) -> dict:
    """The run's manifest as on a machine where its recorded base folder does not exist."""
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["base_path"] = str(run / "no-such-base")
    (run / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def test_sft_and_rl_runs_record_the_revision_and_a_moved_run_loads_it(tmp_path, hub_two_revisions):
    from medtune.export.common import base_spec

    h = hub_two_revisions
    data = write_records(tmp_path / "records.jsonl", n=8)
    pinned = [f"model.base={h['repo']}", f"model.revision={h['pinned']}", *COMMON]
    sft = train(load_config(None, pinned), data, tmp_path / "sft", progress=False).run_dir
    dpo = train(load_config(None, [*pinned, "train.stage=dpo", f"train.init_from={sft}"]), data, tmp_path / "dpo",
                progress=False).run_dir
    for run in (sft, dpo):
        manifest = json.loads((run / "manifest.json").read_text())
        assert (manifest["base_model"], manifest["base_revision"]) == (h["repo"], h["pinned"]), run
        assert manifest["base_path"] == str(h["pinned_dir"]), run
    expected = load_trained(sft, device="cpu", dtype="float32")
    for run in (sft, dpo):
        manifest = _moved(run)
        assert adapter_base(run, manifest) == str(h["pinned_dir"]) == base_spec(run)
    moved = load_trained(sft, device="cpu", dtype="float32")
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.equal(moved.model(ids).logits, expected.model(ids).logits)


def test_the_base_of_a_moved_run(tmp_path, hub_two_revisions):
    """base_path while it exists; else the spec at the recorded revision; a run without one keeps the spec."""
    from medtune.train.load import manifest_base

    h = hub_two_revisions
    here = tmp_path / "base"
    here.mkdir()
    assert manifest_base({"base_model": h["repo"], "base_revision": h["pinned"], "base_path": str(here)}) == str(here)
    gone = str(tmp_path / "gone")
    assert manifest_base({"base_model": h["repo"], "base_revision": h["pinned"], "base_path": gone}) == str(h["pinned_dir"])
    assert manifest_base({"base_model": h["repo"], "base_path": gone}) == h["repo"]
    shutil.rmtree(h["pinned_dir"])  # not cached, and offline: the loaders' clear error, not the `main` weights
    from medtune.models.source import ModelLoadError

    with pytest.raises(ModelLoadError, match="acme/tiny"):
        manifest_base({"base_model": h["repo"], "base_revision": h["pinned"], "base_path": gone})


def test_a_moved_run_of_the_embedded_model_named_by_its_hub_id_finds_the_embedded_copy():
    """Before 2026-12-05 the Hub id of SmolLM2-135M-Instruct meant the embedded copy (its base_path the materialized
    `smollm2-135m` folder): such a run moved elsewhere is merged onto that copy, not onto the published checkpoint."""
    from medtune.train.load import manifest_base

    old = {"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "base_path": "/gone/.cache/medtune/models/smollm2-135m"}
    assert manifest_base(old) == "smollm2-135m"
    hub = {"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "base_path": "/gone/hub/snapshots/abc"}
    assert manifest_base(hub) == "HuggingFaceTB/SmolLM2-135M-Instruct"
