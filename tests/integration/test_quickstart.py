"""The main job end to end on the embedded model (shortened: fewer cases, steps and items)."""

import json

import pytest


@pytest.mark.slow
def test_quickstart_runs_every_stage(tmp_path, embedded_dir):
    from medtune import DISCLAIMER
    from medtune.quickstart import DEMO_QUESTIONS, run_quickstart

    lines: list[str] = []
    res = run_quickstart(tmp_path / "qs", echo=lines.append, n_cases=60, heldout_cases=24,
                         overrides=["train.max_steps=6", "train.eval_steps=6"])
    out = "\n".join(lines)
    assert len(res.answers["base"]) == len(res.answers["tuned"]) == len(DEMO_QUESTIONS)
    assert all(a.strip() for a in res.answers["base"] + res.answers["tuned"])
    assert out.count(DISCLAIMER) == 2
    train = res.stages["train"]
    assert train["final_eval_loss"] < train["first_eval_loss"]
    cmp = json.loads((tmp_path / "qs" / "eval" / "compare.json").read_text())
    assert cmp["items"] == 24 and 0.0 <= cmp["mcnemar"]["p_value"] <= 1.0
    export = res.stages["export"]
    assert (tmp_path / "qs" / "export" / "export_summary.json").is_file()
    assert "q8_0" in export["files"]
    q8 = [row for row in export["verify"] if row["type"] == "Q8_0"]
    assert q8 and q8[0]["passed"] and q8[0]["chat_template_roundtrip"]
