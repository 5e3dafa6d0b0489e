"""bench/vignette_baseline.py: a bag-of-words classifier trained on engine cases answers the dev vignettes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from medtune.eval.report import compare_runs

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "vignette_baseline.py"


def _load():
    spec = importlib.util.spec_from_file_location("vignette_baseline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_baseline_beats_chance_and_writes_a_pairable_evaluation_folder(tmp_path):
    vb = _load()
    summary = vb.run(600, seed=3, benchmark="dev_vignettes", out=tmp_path / "a")
    acc = summary["accuracy"]
    # 600 cases (~7 per condition) already carry the signal well above guessing among the KB options
    assert acc["n"] == 88 and acc["accuracy"] > summary["kb_only_guess_chance"] + 0.2, summary
    assert summary["largest_letter_share"] < 0.4 and set(summary["by_subject"]) >= {"cardiology", "urology"}
    rows = [json.loads(line) for line in (tmp_path / "a" / "predictions.jsonl").read_text().splitlines()]
    assert all(r["pred"] in "ABCD" and r["correct"] == (r["pred"] == r["gold"]) for r in rows)
    paired = compare_runs(tmp_path / "a", tmp_path / "a")  # what `medtune eval compare` pairs with a model's folder
    assert paired["items"] == 88 and paired["mcnemar"]["p_value"] == 1.0


def test_baseline_trains_on_a_recipes_own_records_file(tmp_path):
    """--records: the classifier reads what a recipe's model trained on (stems + metadata.condition_id)."""
    from medtune.data.io import write_records
    from medtune.synth.engine import generate_records

    vb = _load()
    records = list(generate_records(600, seed=4, tasks=["mcq"]))
    unlabelled = records[0].model_copy(update={"id": "no-condition", "metadata": {}})
    write_records(tmp_path / "records.jsonl", [unlabelled, *records])
    texts, labels = vb.records_training_set(tmp_path / "records.jsonl")
    assert len(texts) == len(records) == len(labels)  # the unlabelled record is skipped
    assert labels[0] == records[0].metadata["condition_id"]
    assert not any(t.endswith("?") for t in texts)  # the closing question line is cut off, the case stays
    summary = vb.run(0, seed=0, benchmark="dev_vignettes", out=tmp_path / "r", train_records=tmp_path / "records.jsonl")
    assert "records.jsonl" in summary["model"] and summary["accuracy"]["n"] == 88
    assert summary["accuracy"]["accuracy"] > summary["kb_only_guess_chance"] + 0.2, summary

    write_records(tmp_path / "none.jsonl", [unlabelled])
    with pytest.raises(SystemExit, match="metadata.condition_id"):
        vb.records_training_set(tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text((tmp_path / "records.jsonl").read_text().splitlines()[1] + "\n" + '{"id": 3}\n')
    with pytest.raises(SystemExit, match=r"bad.jsonl:2: field"):  # file, line and field, no traceback
        vb.records_training_set(bad)
