"""What `medtune eval compare` pairs and states: the items both summaries cover, one row per id, both protocols,
and the benchmark each side evaluated (by name and by the source recorded in its fingerprint)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.eval.benchmarks import BenchmarkSpec
from medtune.eval.evaluate import summarize
from medtune.eval.report import compare_runs
from medtune.eval.store import PredictionStore

runner = CliRunner()


def _row(i: int, correct: bool) -> dict:
    return {"id": f"q{i}", "correct": correct, "status": "ok", "options": {"A": "x", "B": "y"}, "gold": "A",
            "pred": "A" if correct else "B", "reasoning_chars": 10, "group": {}}


def _folder(path: Path, rows: list[dict], *, covered: int | None = None, benchmark: str | None = "dev",
            protocol: str = "cot", source_sha256: str | None = None) -> Path:
    """An evaluation folder: rows in predictions.jsonl, a summary of the first ``covered`` of them (all by default)."""
    PredictionStore(path / "predictions.jsonl").append(rows)
    summary = summarize(rows[:covered], BenchmarkSpec(name=benchmark or "x", files="-", description="d"), "cot")
    summary["protocol"] = protocol
    if benchmark is None:
        summary["benchmark"] = None
    (path / "summary.json").write_text(json.dumps(summary))
    if source_sha256:
        (path / "fingerprint.json").write_text(json.dumps({"benchmark": {"name": benchmark, "source_sha256": source_sha256}}))
    return path


def _compare_cli(a: Path, b: Path, out: Path):
    result = runner.invoke(app, ["eval", "compare", str(a), str(b), "--out", str(out)])
    return result, " ".join(result.output.split())


def test_compare_pairs_only_the_items_both_summaries_cover(tmp_path):
    """Both folders keep 10 rows (an earlier --limit 10), their summaries cover q0-q2 (--limit 3)."""
    from medtune.report.collect import collect
    from medtune.report.render import build_context

    a = _folder(tmp_path / "a", [_row(i, i < 3) for i in range(10)], covered=3)
    b = _folder(tmp_path / "b", [_row(i, i >= 3) for i in range(10)], covered=3)
    r = compare_runs(a, b, tmp_path / "out")
    assert r["items"] == 3 and r["accuracy_a"]["accuracy"] == 1.0 and r["accuracy_b"]["accuracy"] == 0.0
    assert (r["mcnemar"]["b"], r["mcnemar"]["c"]) == (3, 0) and r["flips"] == {"gained": [], "lost": ["q0", "q1", "q2"]}
    panel = build_context(collect(tmp_path / "out"))["comparisons"][0]  # the HTML card and its flips panel agree
    assert panel["r"]["items"] == 3 and len(panel["flips"]["lost"]) == r["mcnemar"]["b"]
    result, text = _compare_cli(a, b, tmp_path / "cli")
    assert result.exit_code == 0 and "3 common items paired" in text


def test_a_duplicate_prediction_id_is_refused_by_every_reader(tmp_path):
    from medtune.report.collect import ReportError, load_evaluation

    rows = [_row(1, False), _row(2, True), _row(1, True)]
    a = _folder(tmp_path / "a", rows[:2])
    PredictionStore(a / "predictions.jsonl").append(rows[2:])
    b = _folder(tmp_path / "b", rows[:2])
    message = "predictions.jsonl:3: field id: duplicate id 'q1' (first at line 1)"
    with pytest.raises(ValueError, match=re.escape(message)):
        PredictionStore(a / "predictions.jsonl").load()  # what evaluate() resumes and summarises from
    with pytest.raises(ReportError, match=re.escape(message)):
        load_evaluation(a, tmp_path)
    with pytest.raises(ValueError, match=re.escape(message)):
        compare_runs(a, b)
    for args in (["eval", "compare", str(a), str(b), "--out", str(tmp_path / "cmp")], ["report", str(a)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "Traceback" not in result.output, args
        assert message in " ".join(result.output.split()), args


def test_the_comparison_states_both_protocols_and_warns_when_they_differ(tmp_path):
    a = _folder(tmp_path / "a", [_row(1, True), _row(2, False)], protocol="loglik")
    b = _folder(tmp_path / "b", [_row(1, True), _row(2, True)], protocol="cot")
    r = compare_runs(a, b, tmp_path / "out")
    assert r["warnings"] and "different protocols (loglik, cot)" in r["warnings"][0]
    html = (tmp_path / "out" / "compare.html").read_text()
    assert '<td data-metric="protocol_a">loglik</td>' in html and '<td data-metric="protocol_b">cot</td>' in html
    assert 'class="warning"' in html and "different protocols (loglik, cot)" in html
    assert "| loglik |" in (tmp_path / "out" / "compare.md").read_text()
    result, text = _compare_cli(a, b, tmp_path / "cli")
    assert result.exit_code == 0 and "protocols A loglik, B cot" in text and "warning: The two sides" in text
    same = _folder(tmp_path / "c", [_row(1, False), _row(2, True)], protocol="cot")
    result, text = _compare_cli(b, same, tmp_path / "cli2")
    assert "(protocol cot)" in text and "warning" not in text


def test_different_benchmark_sources_are_said_and_an_unnamed_benchmark_is_unknown(tmp_path):
    """The source digest is the file's under `eval run` and the records' under a base-vs-tuned comparison (a --limit
    subset digests differently): a difference is a warning, not a refusal; the ids both answered are paired."""
    rows = [_row(1, True), _row(2, False)]
    a = _folder(tmp_path / "a", rows, source_sha256="a" * 64)
    b = _folder(tmp_path / "b", rows, source_sha256="b" * 64)
    r = compare_runs(a, b)
    assert r["items"] == 2 and any("different benchmark sources (aaaaaaaaaaaa, bbbbbbbbbbbb)" in w for w in r["warnings"])
    result, text = _compare_cli(a, b, tmp_path / "cli")
    assert result.exit_code == 0 and "different benchmark sources" in text
    unnamed = _folder(tmp_path / "unnamed", rows, benchmark=None)
    r = compare_runs(_folder(tmp_path / "medqa", rows, benchmark="medqa"), unnamed, tmp_path / "out")
    assert r["benchmark"] is None and (r["benchmark_a"], r["benchmark_b"]) == ("medqa", None)
    assert "Only A names its benchmark (medqa); B's benchmark is unknown." in r["warnings"]
    md = (tmp_path / "out" / "compare.md").read_text()
    assert "common items of medqa" not in md and "| not recorded |" in md
