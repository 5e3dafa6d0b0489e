"""`medtune run` ends with RUN/report.html, also when every stage was skipped; its numbers are the stages' own."""

from __future__ import annotations

import json

from htmlscan import scan_html
from typer.testing import CliRunner

from medtune.cli.main import app


def _overrides(tiny_model_dir, run_dir) -> list[str]:
    """The quickstart's chain (demo synth, LoRA, base vs tuned by cot) cut down to seconds on the tiny model."""
    return [f"model.base={tiny_model_dir}", f"run_dir={run_dir}", "stages=[synth,data,train,eval]",
            "synth.n=6", "synth.heldout_cases=3", "train.max_steps=2", "train.save_steps=0", "train.eval_steps=0",
            "train.batch_size=2", "data.max_length=1024", "eval.max_new_tokens=8", "eval.batch_size=4",
            "eval.reasoning_format=plain", "eval.system_prompt=''"]


def test_medtune_run_writes_a_report_whose_numbers_are_the_stages(tiny_model_dir, tmp_path):
    from medtune.config import load_config
    from medtune.pipeline.results import EvalOutput

    run = tmp_path / "run"
    args = ["run", "quickstart", *_overrides(tiny_model_dir, run), "--quiet"]
    first = CliRunner(env={"COLUMNS": "300"}).invoke(app, args)
    assert first.exit_code == 0, first.output
    report = run / "report.html"
    assert f"report: {report}" in first.output and report.is_file()
    assert load_config(run / "config.yaml").eval.system_prompt == ""

    stage = json.loads((run / "stages" / "eval.json").read_text())
    (score,) = EvalOutput.model_validate(stage["result"]).scores
    scan = scan_html(report.read_text())
    for side in ("base", "tuned"):
        summary = json.loads((score.folder / side / "summary.json").read_text())
        label = str((score.folder / side).relative_to(run))
        assert scan.metric(label, "accuracy")[0] == str(summary["accuracy"]["accuracy"])
        assert scan.metric(label, "n") == [str(summary["accuracy"]["n"])] == [str(score.n)]
        # eval.reasoning_format / eval.system_prompt reached the comparison: both models asked with them
        assert summary["prompt"]["reasoning_format"] == "plain" and summary["prompt"]["system_prompt"] is None
    assert scan.metric(label, "accuracy")[0] == str(score.accuracy)  # the tuned side is the stage's score
    compare = json.loads(score.summary.read_text())
    assert scan.metric(str(score.folder.relative_to(run)), "p_value") == [f"{compare['mcnemar']['p_value']:.4g}"]
    assert "training records overlap the benchmarks" in " ".join(scan.text)  # the data stage's contamination check

    report.unlink()
    again = CliRunner(env={"COLUMNS": "300"}).invoke(app, args)
    assert again.exit_code == 0, again.output
    assert all(f"] {stage}: up to date" in again.output for stage in ("synth", "data", "train", "eval"))
    assert report.is_file() and f"report: {report}" in again.output

    report.unlink()  # `medtune quickstart` on the same run folder: every stage up to date, the demo answers, the report
    quick = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["quickstart", *_overrides(tiny_model_dir, run), "--quiet"])
    assert quick.exit_code == 0, quick.output
    assert "Tuned model (after fine-tuning)" in quick.output and f"report: {report}" in quick.output and report.is_file()
