"""Model card: YAML front matter, recipe, evaluation table with protocols, disclaimer."""

from __future__ import annotations

import json

import yaml

from medtune import DISCLAIMER
from medtune.export.card import load_eval_results, write_model_card
from medtune.export.common import Provenance, read_provenance


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_with_eval_results(tiny_run, tmp_path):
    (tiny_run / "eval" / "medqa").mkdir(parents=True, exist_ok=True)
    (tiny_run / "eval" / "medqa" / "summary.json").write_text(json.dumps(
        {"benchmark": "medqa", "metric": "accuracy", "accuracy": 0.3125, "n": 200, "protocol": "loglik over A-E, 0-shot"}))
    prov = read_provenance(tiny_run)
    card = write_model_card(tmp_path, prov, "medtune-tiny", run_dir=tiny_run, recipe={"train.lora.r": 4}).read_text()
    meta = _front_matter(card)
    assert meta["base_model"] == prov.base_model and meta["license"] == "other"  # a local base: licence unknown
    assert "medical" in meta["tags"] and meta["datasets"] == ["train.jsonl"]
    assert "| medqa | accuracy | 0.3125 | 200 | loglik over A-E, 0-shot |" in card
    assert "| train.lora.r | 4 |" in card and "| run id | tiny-test-1 |" in card
    for section in ("## Recipe", "## Evaluation", "## Intended use", "## Limitations", "## Disclaimer"):
        assert section in card
    assert card.count(DISCLAIMER) >= 2


def test_card_without_eval_says_so(tmp_path):
    card = write_model_card(tmp_path, Provenance(base_model="smollm2-135m"), "m").read_text()
    assert "No evaluation results were found" in card
    meta = _front_matter(card)  # a preset base is named by its Hub id, with the preset's licence
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta["license"] == "apache-2.0"


def test_broken_eval_summary_is_skipped(tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "summary.json").write_text("{not json")
    assert load_eval_results(tmp_path) == []
