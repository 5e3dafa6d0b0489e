"""merge: merged logits == base + adapter (<= 1e-4 fp32); folder complete; bad runs named clearly."""

from __future__ import annotations

import json

import pytest
import torch

from medtune.export import ExportError, merge_run

IDS = torch.tensor([[5, 17, 42, 99, 120, 7, 33, 250, 3, 64]])


def test_merged_logits_equal_base_plus_adapter(tiny_run, tiny_merged, trained_base):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(trained_base, dtype=torch.float32)
    with torch.no_grad():
        base_logits = base(IDS).logits
        unmerged = PeftModel.from_pretrained(base, tiny_run / "adapter").eval()
        want = unmerged(IDS).logits
        got = AutoModelForCausalLM.from_pretrained(tiny_merged, dtype=torch.float32).eval()(IDS).logits
    assert (got - want).abs().max().item() <= 1e-4
    # the adapter really changes the model, so the equality above is not vacuous
    assert (want - base_logits).abs().max().item() > 1e-2


def test_merged_folder_is_standalone(tiny_merged):
    from transformers import AutoTokenizer

    names = {p.name for p in tiny_merged.iterdir()}
    assert {"config.json", "generation_config.json", "tokenizer.json", "medtune_export.json"} <= names
    assert any(n.endswith(".safetensors") for n in names)
    assert not any(n.startswith("adapter") for n in names)
    tok = AutoTokenizer.from_pretrained(tiny_merged)
    assert "<|im_start|>" in tok.chat_template
    prov = json.loads((tiny_merged / "medtune_export.json").read_text())
    assert prov["run_id"] == "tiny-test-1" and len(prov["adapter_sha256"]) == 64
    assert len(prov["data_manifest_sha256"]) == 64  # {file: sha} from the trainer, digested once


def test_merged_folder_passes_through(tiny_merged):
    assert merge_run(tiny_merged) == tiny_merged


def test_not_a_run_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ExportError, match="not a run folder"):
        merge_run(tmp_path)


def test_adapter_without_weights_is_named(tmp_path):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(ExportError, match="adapter_model.safetensors"):
        merge_run(tmp_path)


def test_broken_manifest_names_file_and_line(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "manifest.json").write_text('{\n  "run_id": "x",\n  oops\n}')
    with pytest.raises(ExportError, match=r"manifest.json:3: invalid JSON"):
        merge_run(run)
