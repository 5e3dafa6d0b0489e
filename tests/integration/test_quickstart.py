"""The main job end to end on the embedded model (shortened: fewer cases, steps and items), then again: all skipped."""

import json
import time

import pytest


@pytest.mark.slow
def test_quickstart_runs_every_stage_then_skips_them(tmp_path, embedded_dir):
    from medtune import DISCLAIMER
    from medtune.pipeline import EvalOutput, ExportOutput, TrainOutput, run_pipeline
    from medtune.quickstart import DEMO_QUESTIONS, quickstart_config, run_quickstart

    overrides = ["synth.n=60", "synth.heldout_cases=24", "train.max_steps=6", "train.eval_steps=6", "train.save_steps=3"]
    lines: list[str] = []
    res = run_quickstart(tmp_path / "qs", echo=lines.append, overrides=overrides, progress=False)
    out = "\n".join(lines)
    assert len(res.answers["base"]) == len(res.answers["tuned"]) == len(DEMO_QUESTIONS)
    assert all(a.strip() for a in res.answers["base"] + res.answers["tuned"])
    assert out.count(DISCLAIMER) == 2
    assert [o.action for o in res.pipeline.outcomes] == ["ran"] * 6
    train = res.pipeline.get(TrainOutput)
    assert train.final_eval_loss < train.first_eval_loss
    cmp = json.loads((tmp_path / "qs" / "eval" / "heldout-cot" / "compare.json").read_text())
    assert cmp["items"] == 24 and 0.0 <= cmp["mcnemar"]["p_value"] <= 1.0
    score = res.pipeline.get(EvalOutput).scores[0]
    assert score.n == 24 and score.base_accuracy is not None
    export = res.pipeline.get(ExportOutput)
    assert "q8_0" in export.files
    summary = json.loads((tmp_path / "qs" / "export" / "export_summary.json").read_text())
    q8 = [row for row in summary["verify"] if row["type"] == "Q8_0"]
    assert q8 and q8[0]["passed"] and q8[0]["chat_template_roundtrip"]
    card = (tmp_path / "qs" / "export" / "README.md").read_text()  # the eval stage's numbers, beside the base's
    assert f"| heldout | cot | {score.accuracy:.4f} (" in card and f"| 24 | {score.base_accuracy:.4f} |" in card, card

    t0 = time.perf_counter()  # `medtune run` again at once: every stage up to date
    again = run_pipeline(quickstart_config(tmp_path / "qs", overrides), echo=lambda _: None, progress=False)
    assert [o.action for o in again.outcomes] == ["skipped"] * 6 and time.perf_counter() - t0 < 30
    assert again.get(EvalOutput).scores == res.pipeline.get(EvalOutput).scores
