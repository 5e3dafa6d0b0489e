"""Model card: YAML front matter, recipe, evaluation table with protocols, disclaimer."""

from __future__ import annotations

import json
import shutil

import yaml
from export_helpers import build_run

from medtune import DISCLAIMER
from medtune.data.records import Answer, Record
from medtune.export.card import find_eval_results, write_model_card
from medtune.export.common import Provenance, read_provenance


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def _mcq(n: int) -> list[Record]:
    names = ["Pneumonia", "Asthma", "Pulmonary embolism", "Heart failure"]
    return [Record.create(source="t", task="mcq", question=f"Case {i}: fever and dyspnea. Most likely diagnosis?",
                          options=dict(zip("ABCD", names[i % 4:] + names[:i % 4])), answer=Answer(letter="ABCD"[i % 4]))
            for i in range(n)]


def test_card_lists_this_models_evaluations_beside_its_base_and_no_other_models(tiny_run, trained_base, tmp_path,
                                                                                 caplog):
    """`medtune run` writes RUN_DIR/eval beside RUN_DIR/train; the card found nothing there (it read RUN_DIR/train/eval
    and a summary format the evaluator never wrote). Rows are matched by model identity, never by folder."""
    from medtune.eval.evaluate import compare_models

    run = tmp_path / "runs" / "train"
    shutil.copytree(tiny_run, run)
    quiet = {"batch_size": 4, "device": "cpu", "log": lambda *_: None}
    compare_models(str(trained_base), run, _mcq(6), tmp_path / "runs" / "eval" / "mcq-loglik", **quiet)
    other = build_run(trained_base, tmp_path / "other", b_std=0.05, seed=7)  # another adapter on the same base
    compare_models(str(trained_base), other, _mcq(5), tmp_path / "runs" / "eval" / "other-loglik", **quiet)
    tuned = json.loads((tmp_path / "runs" / "eval" / "mcq-loglik" / "tuned" / "summary.json").read_text())
    base = json.loads((tmp_path / "runs" / "eval" / "mcq-loglik" / "base" / "summary.json").read_text())

    rows = find_eval_results(run, tmp_path / "unused")
    assert [(r["n"], r["folder"]) for r in rows] == [(6, "eval/mcq-loglik/tuned")]  # not the other adapter's 5 items
    assert rows[0]["accuracy"] == f"{tuned['accuracy']['accuracy']:.4f}" and rows[0]["base"] == f"{base['accuracy']['accuracy']:.4f}"
    assert rows[0]["ci"] == "-".join(f"{x:.3f}" for x in tuned["accuracy"]["ci95"])
    card = write_model_card(tmp_path / "card", read_provenance(run), "medtune-tiny", rows, recipe={"train.lora.r": 4}).read_text()
    line = next(x for x in card.splitlines() if "eval/mcq-loglik/tuned" in x)
    assert line.startswith(f"| {tuned['benchmark']} | loglik (chat) | {rows[0]['accuracy']} ({rows[0]['ci']}) | 6 |"), line
    assert "- loglik: zero-shot log-likelihood" in card and "No evaluation of this model" not in card
    meta = _front_matter(card)
    assert meta["base_model"] == str(trained_base) and meta["license"] == "other"  # a local base: licence unknown
    assert "medical" in meta["tags"] and meta["datasets"] == ["train.jsonl"]
    assert "| train.lora.r | 4 |" in card and "| run id | tiny-test-1 |" in card
    for section in ("## Recipe", "## Evaluation", "## Intended use", "## Limitations", "## Disclaimer"):
        assert section in card
    assert card.count(DISCLAIMER) >= 2

    summary = tmp_path / "runs" / "eval" / "mcq-loglik" / "tuned" / "summary.json"
    summary.write_text(json.dumps({**tuned, "accuracy": {"n": 6, "accuracy": 0.5}}))  # no interval: not shown as 0.5
    assert find_eval_results(run, tmp_path / "unused") == []
    summary.write_text("{not json")
    assert find_eval_results(run, tmp_path / "unused") == []  # a broken summary is skipped, and nothing else claims it
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 2 and all(str(summary) in m for m in skipped)
    assert "field 'accuracy.ci95' is missing" in skipped[0] and "line 1: not valid JSON" in skipped[1]


def test_card_without_eval_says_so(tmp_path):
    card = write_model_card(tmp_path, Provenance(base_model="smollm2-135m"), "m").read_text()
    assert "No evaluation of this model was found" in card
    meta = _front_matter(card)  # a preset base is named by its Hub id, with the preset's licence
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta["license"] == "apache-2.0"
