"""The HTML run report without a browser: its numbers, its self-containment, hostile text, Markdown twins, CLI."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from htmlscan import URL_ATTRS, scan_html
from runkit import HOSTILE
from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.eval.metrics import chance_level
from medtune.eval.store import PredictionStore
from medtune.report.items import answer_highlight

EXTERNAL = ("http://", "https://", 'src="//', "src='//")


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _evals(run: Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(run)): _read(p) for p in sorted(run.rglob("summary.json"))}


def test_numbers_equal_summary_and_compare_json(tiny_run):
    scan = scan_html((tiny_run / "report.html").read_text())
    evals = _evals(tiny_run)
    assert set(evals) == {"eval/base", "eval/tuned", "eval/tuned-loglik"}
    for label, s in evals.items():
        acc = s["accuracy"]
        # overview row and the evaluation's own table show the same stored number
        assert scan.metric(label, "accuracy") == [str(acc["accuracy"])] * 2, label
        assert scan.metric(label, "n") == [str(acc["n"])]
        assert scan.metric(label, "ci95") == [f"{acc['ci95'][0]} – {acc['ci95'][1]}"]
        assert scan.metric(label, "unparseable") == [str(acc["unparseable"])]
        assert scan.metric(label, "chance") == [str(s["chance"])] and s["chance"] == 0.25
        if s["protocol"] == "loglik":
            assert scan.metric(label, "ece") == [str(s["calibration"]["ece"])] * 2
            assert scan.metric(label, "accuracy_norm") == [str(s["accuracy_norm"]["accuracy"])]
    cmp = _read(tiny_run / "eval" / "compare.json")
    m, d = cmp["mcnemar"], cmp["difference_b_minus_a"]
    assert scan.metric("eval", "accuracy_a") == [str(cmp["accuracy_a"]["accuracy"])]
    assert scan.metric("eval", "accuracy_b") == [str(cmp["accuracy_b"]["accuracy"])]
    assert scan.metric("eval", "mcnemar_b") == [str(m["b"])] and scan.metric("eval", "mcnemar_c") == [str(m["c"])]
    assert scan.metric("eval", "p_value") == [f"{m['p_value']:.4g}"]
    assert scan.metric("eval", "gain") == [f"{d['gain']:+.4f}"]
    # the run really changed answers: the tuned model states letters, the untrained base does not
    assert m["c"] > 0 and cmp["accuracy_b"]["accuracy"] > cmp["accuracy_a"]["accuracy"]
    links = [a for t, a in scan.tags if t == "a" and "data-open-row" in a]
    assert len(links) == m["b"] + m["c"] == len(cmp["flips"]["gained"]) + len(cmp["flips"]["lost"])


def test_training_and_export_sections_come_from_their_files(tiny_run):
    html = (tiny_run / "report.html").read_text()
    scan = scan_html(html)
    metrics = [json.loads(line) for line in (tiny_run / "train" / "metrics.jsonl").read_text().splitlines()]
    eval_steps = [r["step"] for r in metrics if "eval_loss" in r]
    assert eval_steps == list(range(0, 61, 10))
    assert f"({len(eval_steps)} evaluation(s)" in html
    manifest = _read(tiny_run / "train" / "manifest.json")
    config_hash = (tiny_run / "train" / "config.yaml").read_text().splitlines()[0].split("=")[1]
    text = " ".join(scan.text)
    assert manifest["run_id"] in text and config_hash in text and manifest["base_model"] in text
    p = manifest["precision"]  # read as words, not a Python dict's repr
    assert f"{p['compute']} compute on {p['device']}; base weights {p['weights']}" in text and "{'device'" not in text
    export = _read(tiny_run / "export" / "export_summary.json")
    sizes = [a["data-bytes"] for t, a in scan.tags if "data-bytes" in a]
    assert sizes == [str(f["bytes"]) for f in export["files"].values()]
    # verification was not run: the report must say so, whatever export_summary's "passed" says
    assert "unverified" in text and "verified:" not in text


@pytest.mark.parametrize("method", ["rslora", "full"])
def test_the_run_card_gives_the_adapter_rank_for_every_adapter_method(method, tiny_run, tmp_path):
    from medtune.report import build_report_html

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    manifest = _read(run / "train" / "manifest.json")
    (run / "train" / "manifest.json").write_text(json.dumps({**manifest, "method": method}))
    text = " ".join(scan_html(build_report_html(run)).text)
    assert (f"{method} (r=" in text) == (method != "full"), method  # rslora was shown without its rank


@pytest.mark.parametrize("which", ["tiny", "large"])
def test_one_file_without_external_references(which, tiny_run, large_eval):
    path = tiny_run / "report.html" if which == "tiny" else large_eval / "compare.html"
    html = path.read_text()
    scan = scan_html(html)
    for tag, attrs in scan.tags:
        assert tag not in ("link", "iframe", "base", "object", "embed"), tag
        for name, value in attrs.items():
            if name in URL_ATTRS:
                assert value.startswith(("data:", "#")), (tag, name, value[:80])
    executable = [body for attrs, body in scan.scripts if attrs.get("type") != "application/json"]
    outside_text = "\n".join(scan.markup + scan.styles + executable)
    for needle in EXTERNAL:
        assert needle not in outside_text, needle
    assert "url(" not in "".join(scan.styles) and "@import" not in "".join(scan.styles)
    assert not any(re.search(r"\b(fetch|XMLHttpRequest|WebSocket|import)\s*\(", body) for body in executable)
    assert len(executable) == 1 and len([1 for a, _ in scan.scripts if a.get("type") == "application/json"]) == 1
    if which == "large":  # a URL inside model text is text, not a reference: the grep above is not vacuous
        assert "https://example.org" in html


def test_hostile_model_text_stays_text(large_eval):
    html = (large_eval / "compare.html").read_text()
    scan = scan_html(html)
    assert "</script><script>window.__pwned" not in html and "<img src=x" not in html
    assert [t for t, _ in scan.tags].count("script") == 2 and not scan.comments
    data = json.loads(next(body for a, body in scan.scripts if a.get("id") == "item-data"))
    hostile = [i for i in data["items"] if HOSTILE in i.get("out", "")]
    assert len(hostile) == 2 and HOSTILE in data["questions"][hostile[0]["q"]]["text"]


def test_chance_is_per_item_and_markdown_twins(large_eval, tiny_run):
    s = _read(large_eval / "base" / "summary.json")
    rows = PredictionStore(large_eval / "base" / "predictions.jsonl").load()
    counts = [len(r["options"]) for r in rows]
    assert set(counts) == {4, 5} and s["chance"] == chance_level(counts) == pytest.approx(0.2333, abs=1e-4)
    from medtune.eval.report import write_report

    md_path, html_path = write_report(large_eval / "base")
    text = md_path.read_text()
    assert f"chance: {s['chance']}" in text and "chance: n/a" not in text
    assert "| accuracy | " + f"{s['accuracy']['accuracy']:.4f}" in text
    assert "|---|" not in html_path.read_text() and "research" in text.lower()
    cmp_md = (large_eval / "compare.md").read_text()
    cmp = _read(large_eval / "compare.json")
    assert f"Flipped to right (A wrong, B right): {cmp['mcnemar']['c']}" in cmp_md
    assert "|---|" in (tiny_run / "eval" / "tuned" / "report.md").read_text()


def test_cli_writes_the_report_and_names_bad_inputs(tiny_run, tmp_path):
    runner = CliRunner()
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", str(tiny_run / "eval" / "tuned"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 10_000 and str(out) in r.output.replace("\n", "")
    r = runner.invoke(app, ["report", str(tmp_path / "empty_missing")])
    assert r.exit_code == 2 and "not a folder" in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "no run outputs found" in r.output
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run / "eval" / "base", broken)
    (broken / "summary.json").write_text('{"benchmark": "x",\n "protocol": ')
    r = runner.invoke(app, ["report", str(broken)])
    assert r.exit_code == 2 and "summary.json: line 2" in r.output.replace("\n", "")
    (broken / "summary.json").write_text(json.dumps({"benchmark": "x", "protocol": "cot"}))
    r = runner.invoke(app, ["report", str(broken)])
    assert r.exit_code == 2 and "field 'accuracy.accuracy' is missing" in r.output.replace("\n", "")
    shutil.copy(tiny_run / "eval" / "base" / "summary.json", broken / "summary.json")
    lines = (broken / "predictions.jsonl").read_text().splitlines()
    (broken / "predictions.jsonl").write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    r = runner.invoke(app, ["report", str(broken)])
    assert r.exit_code == 2 and "predictions.jsonl:2" in r.output.replace("\n", "")


@pytest.mark.parametrize("output, pred, marked", [
    ("<think>\nA or B?\n</think>\n\nI weighed it. Answer: B. Then more text.", "B", "Answer: B."),
    ("## Thinking\nx\n## Final Response\nC", "C", "C"),  # a bare letter: the whole final part
    ("## Final Response\nThe answer is pulmonary embolism", "C", "The answer is pulmonary embolism"),
    ("<think>The answer is (A)</think>\nNo idea.", None, None),  # unparseable: nothing marked
])
def test_answer_highlight_marks_what_the_extractor_read(output, pred, marked):
    options = {"A": "Asthma", "B": "Croup", "C": "Pulmonary embolism"}
    final, span = answer_highlight(output, options, pred)
    assert output[final:].strip() == output.rsplit(">", 1)[-1].rsplit("Response", 1)[-1].strip()
    assert (output[span[0]:span[1]] if span else None) == marked


def test_tables_and_items_cover_the_summary_items_not_every_row_in_the_folder(tmp_path):
    """A folder keeps rows of other items (an earlier, larger --limit) for a later resume; the report shows only
    the items its summary and comparison cover, so its tables agree with summary.json and compare.json."""
    from runkit import ScriptedBackend, mcq_records

    from medtune.eval.benchmarks import BenchmarkSpec
    from medtune.eval.evaluate import evaluate
    from medtune.eval.report import compare_runs
    from medtune.report.collect import collect
    from medtune.report.render import build_context

    records, spec, out = mcq_records(12), BenchmarkSpec(name="b", files="-", description="d"), tmp_path / "eval"
    for label, skill, seed in (("base", 0.2, 0), ("tuned", 0.7, 1)):
        for subset in (records, records[:4]):  # 12 items first, then the 4 asked for now
            evaluate(ScriptedBackend(label, skill, seed), spec, subset, out / label, protocol="cot",
                     write_report=False, log=lambda *_: None, benchmark_sha256="one benchmark file")
    cmp = compare_runs(out / "base", out / "tuned", out, ids=[r.id for r in records[:4]])
    contents = collect(out)
    for ev in contents.evaluations:
        assert ev.summary["accuracy"]["n"] == len(ev.rows) == 4
        assert sorted(r["id"] for r in ev.rows) == sorted(r.id for r in records[:4])
    from medtune.report.render import _reasoning_formats

    assert set(_reasoning_formats(contents).values()) == {"think"}  # the summary's prompt, as the scorer read it
    data = build_context(contents)["items"]
    assert len(data["items"]) == 8 and cmp["items"] == 4  # 4 items x 2 models, not 12 x 2
    pair = data["comparisons"][0]
    assert (len(pair["gained"]), len(pair["lost"])) == (cmp["mcnemar"]["c"], cmp["mcnemar"]["b"])


def test_plain_output_highlights_the_paragraph_the_extractor_read():
    options = {"A": "Asthma", "B": "Croup", "C": "Pulmonary embolism"}
    out = "Sudden pleuritic pain after a flight.\n\nThe answer is (C) Pulmonary embolism.\n\nCroup would show stridor."
    final, span = answer_highlight(out, options, "C", "plain")
    assert out[span[0]:span[1]] == "The answer is (C) Pulmonary embolism." and out[final:].startswith("The answer is")
