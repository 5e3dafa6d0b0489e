"""Contamination check: PubMedQA's 500 official test items inside ori_pqal.json, and each signal alone."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.data.contamination import (
    BenchmarkIndex,
    ContaminationReport,
    benchmark_files,
    filter_contaminated,
)
from medtune.data.importers import iter_records
from medtune.data.io import read_records, write_records
from medtune.data.pipeline import check_contamination
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
    # most of the question's 64-char windows inside a long unrelated text: too few of its words for the 13-grams
    filler = " ".join(f"word{i}" for i in range(80))
    window = index.check(_mk(f"{filler} {BENCH_Q[:130].upper()}"))
    assert window.signals == ["substring"] and window.substring_coverage > 0.5 and window.benchmark_ids == ["bench-1"]
    assert not index.check(_mk(f"{filler} {BENCH_Q[20:90]}")).flagged  # one shared phrase is not a copied item
    # a short benchmark item is only catchable by exact (normalized) question
    exact = index.check(_mk("  scurvy IS caused by?"))
    assert exact.signals == ["exact_question"]
    clean = index.check(_mk("A 70-year-old man has painless jaundice, weight loss and a palpable gallbladder."))
    assert not clean.flagged and clean.ngram_overlap == 0.0


def test_stock_question_lines_and_shared_options_are_not_contamination():
    """Seen on 9,000 engine cases against MedQA/MMLU/dev vignettes: 40% were flagged by the stock line "Which of the
    following is the most appropriate next step in management?" and MCQs with a vignette's four options."""
    options = {"A": "Acute myocardial infarction", "B": "Aortic dissection", "C": "Acute pericarditis", "D": "Pulmonary embolism"}
    stock = " Which of the following is the most likely mechanism of this patient's condition?"

    def mcq(stem: str, line: str = stock) -> Record:
        return Record.create(source="t", task="mcq", question=stem + line, options=options, answer=Answer(letter="A"))

    index = BenchmarkIndex()
    index.add(mcq(BENCH_Q + "."), "b1")
    index.add(mcq("A 61-year-old man has had crushing substernal chest pain for an hour with diaphoresis and nausea.",
                  " Which of the following is the most likely diagnosis?"), "b2")
    index.add(mcq("A 19-year-old woman has sharp chest pain that improves when she leans forward.",
                  " Which of the following is the most likely diagnosis?"), "b3")
    engine = mcq("A 58-year-old man presents with chest pain that began two hours ago at rest; troponin is elevated.")
    assert not index.check(engine).flagged
    same_options = mcq("A 70-year-old woman has sudden tearing pain between the shoulder blades.",
                       " Which of the following is the most likely diagnosis?")
    assert not index.check(same_options).flagged
    copied = index.check(mcq("Read this case. " + BENCH_Q + "."))
    assert {"ngram", "substring"} <= set(copied.signals) and copied.benchmark_ids[0] == "b1"


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


def test_without_against_the_declared_benchmarks_are_checked(shared_data, tmp_path, no_data_root):
    """No --against: the packaged dev vignettes always, the data-root benchmarks when their files are there."""
    from medtune.eval.benchmarks import get_benchmark, load_benchmark_records

    vignette = load_benchmark_records(get_benchmark("dev_vignettes"))[3]
    medqa = next(iter_records(shared_data / "medqa" / "us_4options_test.jsonl", "medqa"))
    rows = [_mk(vignette.question.split("\n\n")[0]), _mk(medqa.question),
            _mk("A sailor on a long voyage has bleeding gums and corkscrew hairs.")]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(r.model_dump_json() + "\n" for r in rows))
    runner = CliRunner(env={"COLUMNS": "200"})
    alone = runner.invoke(app, ["data", "contamination", str(train), "--report", str(tmp_path / "r1.json")])
    assert alone.exit_code == 0, alone.output
    assert "against dev_vignettes (88 items)" in alone.output and "not checked: medqa:" in alone.output
    assert json.loads((tmp_path / "r1.json").read_text())["hits"][0]["record_id"] == rows[0].id
    full = runner.invoke(app, ["data", "contamination", str(train), "--data-root", str(shared_data),
                               "--drop", str(tmp_path / "clean.jsonl"), "--report", str(tmp_path / "r2.json")])
    assert full.exit_code == 0, full.output
    report = json.loads((tmp_path / "r2.json").read_text())
    assert report["benchmarks"]["medqa"] == 1273 and report["not_checked"] == {}
    assert sorted(h["record_id"] for h in report["hits"]) == sorted([rows[0].id, rows[1].id])
    assert [r.id for r in read_records(tmp_path / "clean.jsonl")] == [rows[2].id]


def _pubmedqa_root(root: Path, n: int = 4, test: int = 2) -> Path:
    """A data root holding a small PubMedQA: ``n`` items in ori_pqal.json, the first ``test`` of them the test ids."""
    items = {str(1000 + i): {"QUESTION": f"Does drug {i} lower the risk of outcome {i} in adults with condition {i}?",
                             "CONTEXTS": [f"We studied {100 + i} patients with condition {i} given drug {i} for a year."],
                             "final_decision": "yes", "LONG_ANSWER": f"Drug {i} lowered the risk."} for i in range(n)}
    (root / "pubmedqa").mkdir(parents=True)
    (root / "pubmedqa" / "ori_pqal.json").write_text(json.dumps(items))
    (root / "pubmedqa" / "test_ground_truth.json").write_text(json.dumps({k: "yes" for k in list(items)[:test]}))
    return root


def test_pubmedqa_is_checked_under_the_default_data_root(tmp_path, monkeypatch):
    """No data_root given: $MEDTUNE_DATA_ROOT (else ../shared/data) is where the benchmark files *and* PubMedQA's
    test ids are looked for, not the current folder; the ids file is one of the files a check depends on."""
    root = _pubmedqa_root(tmp_path / "bench")
    monkeypatch.setenv("MEDTUNE_DATA_ROOT", str(root))
    monkeypatch.chdir(tmp_path)  # a current folder without pubmedqa/
    copied = next(iter_records(root / "pubmedqa" / "ori_pqal.json", "pubmedqa"))
    train = tmp_path / "train.jsonl"
    write_records(train, [copied, _mk("Which vitamin deficiency causes scurvy in sailors on long voyages?")])
    rep = check_contamination([train], benchmarks=["pubmedqa"], fmt="medtune")
    assert rep.not_checked == {} and rep.benchmarks == {"pubmedqa": 2}
    assert (rep.checked, rep.flagged) == (2, 1) and rep.hits[0].benchmark_ids[0] == f"pubmedqa:{copied.id}"
    files = [root / "pubmedqa" / "ori_pqal.json", root / "pubmedqa" / "test_ground_truth.json"]
    assert benchmark_files(None, ["pubmedqa"]) == {"pubmedqa": files}
    assert benchmark_files(root, ["pubmedqa"]) == {"pubmedqa": files}  # the ids file decides which items are checked
