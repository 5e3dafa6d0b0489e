"""bench/vignette_baseline.py: a bag-of-words classifier trained on engine cases answers the dev vignettes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

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
