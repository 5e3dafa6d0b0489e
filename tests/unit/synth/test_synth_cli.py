"""`medtune synth` end to end through the Typer app (in process)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from medtune.cli.main import app

ASSETS = Path(__file__).resolve().parents[2] / "assets"
runner = CliRunner()


def _flat(text: str) -> str:
    """Output without rich's line folding (paths longer than the terminal are split)."""
    return "".join(text.replace("▌", "").split())


def test_synth_writes_files(tmp_path):
    res = runner.invoke(app, ["synth", "--n", "12", "--seed", "4", "--tasks", "mcq,diagnosis", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and {r["task"] for r in rows} == {"mcq", "diagnosis"}
    assert len((tmp_path / "cases.jsonl").read_text().splitlines()) == 12
    assert "12cases,24records" in _flat(res.output)


def test_preview_is_readable_and_carries_the_disclaimer():
    res = runner.invoke(app, ["synth", "--preview", "3", "--seed", "8"])
    assert res.exit_code == 0, res.output
    flat = _flat(res.output)
    assert flat.count("Researchuseonly") == 2
    assert flat.count("mostlikelydiagnosis") >= 3 and "Keyfindings" in flat


def test_validate_kb_ok_and_broken():
    ok = runner.invoke(app, ["synth", "validate-kb", str(ASSETS / "kb_small"), "--only"])
    assert ok.exit_code == 0 and "10conditions" in _flat(ok.output), ok.output
    bad = runner.invoke(app, ["synth", "validate-kb", str(ASSETS / "kb_broken"), "--only"])
    assert bad.exit_code == 2
    assert "fahrenheit_temperature.yaml" in _flat(bad.output) and "vitals.temperature" in _flat(bad.output)


def test_bad_options_exit_2(tmp_path):
    res = runner.invoke(app, ["synth", "--n", "2", "--tasks", "essay", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknowntasks" in _flat(res.output)
    res = runner.invoke(app, ["synth", "--n", "2"])
    assert res.exit_code == 2 and "--out" in res.output
    assert not (tmp_path / "records.jsonl").exists()


def test_compact_and_the_new_task_types_reach_the_engine(tmp_path):
    """`--compact` and `--tasks treatment,mechanism` (and the same synth section in a config) write what the engine writes."""
    from medtune.config import load_config
    from medtune.pipeline.stages.synth import run_synth_stage

    args = ["synth", "--n", "6", "--seed", "2", "--tasks", "diagnosis,treatment,mechanism"]
    for name, extra in (("full", []), ("compact", ["--compact"])):
        res = runner.invoke(app, [*args, *extra, "--out", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
    full, compact = ([json.loads(x) for x in (tmp_path / n / "records.jsonl").read_text().splitlines()] for n in ("full", "compact"))
    assert [r["metadata"]["task_type"] for r in full][:3] == ["diagnosis", "treatment", "mechanism"]
    assert [(r["id"], r["answer"]) for r in full] == [(r["id"], r["answer"]) for r in compact]  # the same facts and draws
    length = lambda rows: sum(len(r["question"]) + len(r.get("context") or "") for r in rows)  # noqa: E731
    assert length(compact) < 0.85 * length(full)
    cfg = load_config(None, ["synth.n=6", "synth.seed=2", "synth.tasks=[diagnosis,treatment,mechanism]", "synth.compact=true"])
    run_synth_stage(cfg.synth, tmp_path / "from_config")
    assert (tmp_path / "from_config" / "records.jsonl").read_bytes() == (tmp_path / "compact" / "records.jsonl").read_bytes()


def test_compact_with_the_demo_style_exits_with_the_config_error(tmp_path):
    res = runner.invoke(app, ["synth", "--n", "4", "--style", "demo", "--tasks", "diagnosis,mcq", "--compact",
                              "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "synth.compact" in _flat(res.output) and "synth.style:demo" in _flat(res.output)
    assert not (tmp_path / "out").exists()


def test_preview_takes_compact_and_refuses_what_it_would_ignore(tmp_path):
    """--preview wrote nothing and silently dropped --out, --tasks, --compact...: it now shows the compact form when
    asked, and refuses the flags that change nothing in a preview."""
    full = runner.invoke(app, ["synth", "--preview", "2", "--seed", "3"])
    short = runner.invoke(app, ["synth", "--preview", "2", "--seed", "3", "--compact"])
    assert full.exit_code == short.exit_code == 0 and len(short.output) < len(full.output)
    refused = runner.invoke(app, ["synth", "--preview", "1", "--out", str(tmp_path / "o"), "--tasks", "mcq"])
    assert refused.exit_code == 2 and "--out, --tasks would change nothing" in refused.output
    assert not (tmp_path / "o").exists()
