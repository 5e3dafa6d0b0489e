"""An evaluation without scorable items reads "no scorable items", not 0.0000; --limit is recorded and shown."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.data.records import Answer, Record
from medtune.eval.benchmarks import BenchmarkSpec, get_benchmark
from medtune.eval.evaluate import evaluate, summarize
from medtune.eval.report import write_report
from medtune.eval.store import PredictionStore


def _svg_texts(html: str) -> str:
    """The decoded text of every SVG plot embedded in a report page."""
    uris = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
    return " ".join(base64.b64decode(u).decode("utf-8") for u in uris)


def test_an_evaluation_without_scorable_items_says_so(tmp_path):
    """Only open-ended items (ROUGE-L, not right or wrong): the accuracy is none, not 0.0 with a [0, 0] interval."""
    rows = [{"id": f"o{i}", "status": "open", "rougeL": 0.3, "group": {}, "reasoning_chars": 5, "raw_output": "x"}
            for i in range(3)]
    PredictionStore(tmp_path / "predictions.jsonl").append(rows)
    summary = summarize(rows, get_benchmark("dev_vignettes"), "cot")
    assert summary["accuracy"]["accuracy"] is None and summary["accuracy"]["n"] == 0
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    md_path, html_path = write_report(tmp_path)
    md, html = md_path.read_text(), html_path.read_text()
    assert "| accuracy | no scorable items |" in md and "0.0000" not in md
    assert '<td class="n" data-metric="accuracy">no scorable items</td>' in html
    assert "no scorable items" in _svg_texts(html)  # the overview plot: words on the row, no point at 0


def test_the_console_lines_say_no_scorable_items(tmp_path):
    from medtune.pipeline.results import BenchmarkScore

    item = Record.create(source="t", task="open", question="How is tension pneumothorax treated?",
                         answer=Answer(text="Needle decompression"))
    items, outputs = tmp_path / "items.jsonl", tmp_path / "outputs.jsonl"
    items.write_text(item.model_dump_json() + "\n")
    outputs.write_text(json.dumps({"id": item.id, "output": "Needle decompression."}) + "\n")
    result = CliRunner().invoke(app, ["eval", "score", str(outputs), "--items", str(items)])
    assert result.exit_code == 0 and "no scorable items (n=0)" in result.output and "0.0000" not in result.output
    score = BenchmarkScore(name="x", folder=tmp_path, summary=tmp_path / "summary.json", n=0, accuracy=None, ci95=(0.0, 1.0))
    assert score.line() == "x: no scorable items (n=0)"


def test_the_limit_is_recorded_and_shown_beside_the_item_count(tmp_path):
    from runkit import ScriptedBackend, mcq_records

    spec = BenchmarkSpec(name="b", files="-", description="d", expected_items=12)
    folder = tmp_path / "eval"
    summary = evaluate(ScriptedBackend("m", 0.5, 0), spec, mcq_records(12)[:3], folder, protocol="cot",
                       log=lambda *_: None, limit=3)
    assert summary["settings"]["limit"] == 3 and summary["benchmark_items"] == 12
    assert "- Items: 3 (first 3 items of 12, --limit 3); chance" in (folder / "report.md").read_text()
    assert "first 3 items of 12, --limit 3" in (folder / "report.html").read_text()
    unlimited = evaluate(ScriptedBackend("m", 0.5, 0), spec, mcq_records(12)[:3], tmp_path / "all", protocol="cot",
                         log=lambda *_: None)
    assert unlimited["settings"]["limit"] is None and "--limit" not in (tmp_path / "all" / "report.md").read_text()


def test_a_comparison_from_before_newcombe_names_its_interval_as_paired_wald(tmp_path: Path):
    from medtune.report import render_markdown

    old = {"a": "A", "b": "B", "items": 2, "accuracy_a": {"accuracy": 0.5, "ci95": [0.1, 0.9], "n": 2},
           "accuracy_b": {"accuracy": 1.0, "ci95": [0.3, 1.0], "n": 2}, "mcnemar": {"test": "exact binomial", "b": 0, "c": 1, "p_value": 1.0},
           "difference_b_minus_a": {"gain": 0.5, "ci95": [-0.19, 1.19]}}
    assert "paired Wald, as medtune computed it before 2026-12-05" in render_markdown("compare.md.j2", r=old)
