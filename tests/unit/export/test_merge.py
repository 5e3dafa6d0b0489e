"""merge: merged logits == base + adapter (<= 1e-4 fp32), saved unrounded for a bf16 base too; folder complete;
bad runs named clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medtune.export import ExportError, merge_run
from medtune.export.common import base_spec

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


def _stored(folder: Path) -> str:
    return json.loads((folder / "config.json").read_text())["dtype"]


def _trained_logits(run):
    """The trained model as training and eval see it: the base (fp32) with the adapter on top, unmerged."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_spec(run), dtype=torch.float32)
    with torch.no_grad():
        base_logits = base(IDS).logits
        return PeftModel.from_pretrained(base, run / "adapter").eval()(IDS).logits, base_logits


def test_a_bf16_base_is_merged_and_saved_without_rounding(bf16_run, tmp_path):
    """The merge of a bf16 base was saved in bf16: 0.016 sigma from the trained model here (0.027 on a 4-layer
    Llama), so verification, which takes the merged folder as the trained model, never saw that rounding."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from medtune.export.verify import TIE_BANDS

    merged = merge_run(bf16_run, tmp_path / "merged")
    want, base_logits = _trained_logits(bf16_run)
    with torch.no_grad():
        got = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()(IDS).logits
    err = ((got - want).abs() / want.std(dim=-1, keepdim=True)).max().item()
    assert err < TIE_BANDS["F16"] / 100, err  # fp32 arithmetic only (~1e-6 sigma); the bf16 save: ~0.016
    assert (want - base_logits).abs().max().item() > 0.1  # the adapter matters
    assert _stored(Path(base_spec(bf16_run))) == "bfloat16" and _stored(merged) == "float32"
    assert {t.dtype for t in load_file(next(merged.glob("*.safetensors"))).values()} == {torch.float32}


def test_export_merges_again_over_a_rounded_merge(bf16_run, tmp_path):
    """RUN/merged made by an earlier version (a bf16 base's merge saved in bf16) is not reused as the reference."""
    import shutil

    from medtune.export.merge import merge_adapter
    from medtune.export.pipeline import resolve_merged

    run = tmp_path / "run"
    shutil.copytree(bf16_run, run)
    merge_adapter(run, run / "merged", keep_fp32=False)  # what the old default wrote
    assert _stored(run / "merged") == "bfloat16"
    merged, _ = resolve_merged(run, tmp_path / "export")
    assert merged == tmp_path / "export" / "merged" and _stored(merged) == "float32"
    shutil.rmtree(run / "merged")
    shutil.copytree(merged, run / "merged")
    assert resolve_merged(run, tmp_path / "export2")[0] == run / "merged"  # an fp32 merge of this adapter is reused


def test_a_stage_started_from_a_full_finetune_merges_onto_that_model(tmp_path):
    """manifest init_model (RUN/init/model): export merges onto it, never onto the original base, and says so when
    it is gone (train.load.load_trained reads the same field)."""
    import json

    from medtune.export.common import ExportError

    run = tmp_path / "rl"
    (run / "init" / "model").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"base_model": "smollm2-135m", "base_path": str(tmp_path / "orig"),
                                                   "init_model": "init/model"}))
    (tmp_path / "orig").mkdir()
    (run / "init" / "model" / "config.json").write_text("{}")
    assert base_spec(run) == str(run / "init" / "model")
    (run / "init" / "model" / "config.json").unlink()
    with pytest.raises(ExportError, match="started from is missing"):
        base_spec(run)


def test_a_run_without_its_base_folder_merges_onto_the_revision_it_trained_on(tmp_path, hub_two_revisions):
    """No base_path on this disk: the manifest's base_model at base_revision, or (a manifest naming no base) config
    model.base at model.revision -- never the Hub's current `main` of that spec."""
    import json

    h = hub_two_revisions
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"base_model": h["repo"], "base_revision": h["pinned"],
                                                   "base_path": str(tmp_path / "gone")}))
    assert base_spec(run) == str(h["pinned_dir"])
    (run / "manifest.json").write_text(json.dumps({"run_id": "old"}))
    (run / "config.yaml").write_text(f"model: {{base: {h['repo']}, revision: '{h['pinned']}'}}\n")
    assert base_spec(run) == str(h["pinned_dir"])


def test_merge_keeps_the_reasoning_format_the_run_trained_with(trained_base, tmp_path):
    """A run trained with `model.reasoning_format: plain` on a base whose preset answers in sections stays plain
    in the merged folder (merge replaced a recorded "plain" by the preset's format); a run whose manifest records
    none takes its config's, else its base's default."""
    import shutil

    import yaml
    from export_helpers import build_run

    from medtune.export.common import read_provenance
    from medtune.models.source import resolve_source

    base = tmp_path / "smol-copy"  # a local copy of the embedded model: preset smollm2-135m, sections
    shutil.copytree(trained_base, base)
    (base / "COMPLETE").write_text(json.dumps({"preset": "smollm2-135m"}))
    run = build_run(base, tmp_path / "run", b_std=0.05)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "reasoning_format": "plain"}))
    merged = merge_run(run, tmp_path / "merged")
    assert read_provenance(merged).reasoning_format == "plain"
    assert resolve_source(str(merged)).reasoning_format == "plain"  # eval and serve ask it as it trained
    del manifest["reasoning_format"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert read_provenance(run).reasoning_format == "sections"  # the base's preset
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"base": str(base), "reasoning_format": "think"}}))
    assert read_provenance(run).reasoning_format == "think"
