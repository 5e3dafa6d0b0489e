"""Contamination check: PubMedQA's 500 official test items inside ori_pqal.json, and each signal alone."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.data.contamination import BenchmarkIndex, ContaminationReport, filter_contaminated
from medtune.data.importers import iter_records
from medtune.data.io import read_records
from medtune.data.records import Answer, Record


def test_pubmedqa_flags_exactly_the_500_test_items(shared_data, tmp_path):
    pqal = shared_data / "pubmedqa" / "ori_pqal.json"
    ids = shared_data / "pubmedqa" / "test_ground_truth.json"
    clean, report = tmp_path / "clean.jsonl", tmp_path / "report.json"
    result = CliRunner().invoke(app, [
        "data", "contamination", str(pqal), "--against", str(pqal), "--against-option", f"ids_file={ids}",
        "--drop", str(clean), "--report", str(report),
    ])
    assert result.exit_code == 0, result.output
    rep = json.loads(report.read_text())
    test_ids = set(json.loads(ids.read_text()))
    assert rep["checked"] == 1000 and rep["flagged"] == 500
    assert {h["record_id"] for h in rep["hits"]} == test_ids
    kept = {r.id for r in read_records(clean)}
    assert len(kept) == 500 and not kept & test_ids
    assert rep["options"] == {"n": 13, "substring": 64, "min_ngram_overlap": 0.1}


def _mk(question, context=None):
    return Record.create(source="t", task="open", question=question, context=context, answer=Answer(text="x"))


BENCH_Q = ("A 34-year-old woman presents with heat intolerance, weight loss, palpitations and a diffusely "
           "enlarged non-tender thyroid gland with a bruit on auscultation")


def test_each_signal_alone():
    index = BenchmarkIndex(n=13, substring=64)
    index.add(_mk(BENCH_Q), "bench-1")
    index.add(_mk("Scurvy is caused by?"), "bench-2")
    # the benchmark question embedded in a longer prompt: n-grams and substrings both fire
    embedded = index.check(_mk("Answer carefully. " + BENCH_Q + ". What is the diagnosis?"))
    assert set(embedded.signals) == {"ngram", "substring"} and embedded.benchmark_ids == ["bench-1"]
    # only a 64-char window shared, too few words for a 13-gram match to matter
    window = index.check(_mk("Unrelated words here, then: " + BENCH_Q[20:90].upper()))
    assert "substring" in window.signals
    # a short benchmark item is only catchable by exact (normalized) question
    exact = index.check(_mk("  scurvy IS caused by?"))
    assert exact.signals == ["exact_question"]
    clean = index.check(_mk("A 70-year-old man has painless jaundice, weight loss and a palpable gallbladder."))
    assert not clean.flagged and clean.ngram_overlap == 0.0


def test_ngram_length_and_threshold_are_configurable():
    paraphrase = _mk("Patient: a 34-year-old woman presents with heat intolerance, weight loss, palpitations, fever")
    loose = BenchmarkIndex(n=5, substring=200, min_ngram_overlap=0.1)
    strict = BenchmarkIndex(n=13, substring=200)
    for idx in (loose, strict):
        idx.add(_mk(BENCH_Q))
    assert loose.check(paraphrase).signals == ["ngram"]
    assert not strict.check(paraphrase).flagged
    report = ContaminationReport()
    kept = list(filter_contaminated([paraphrase, _mk("Unrelated?")], loose, report))
    assert [r.question for r in kept] == ["Unrelated?"] and report.flagged == 1 and report.by_signal["ngram"] == 1


def test_cross_benchmark_check_is_fast_and_sane(shared_data):
    """MedQA vs MedMCQA: different exams, so almost nothing may be flagged."""
    index = BenchmarkIndex()
    index.add_all(iter_records(shared_data / "medqa" / "us_4options_test.jsonl"))
    report = ContaminationReport()
    for _ in filter_contaminated(iter_records(shared_data / "medmcqa" / "dev.jsonl"), index, report, drop=False):
        pass
    assert report.checked == 4183 and report.flagged < 10
