"""`medtune run` on the quickstart recipe with the tiny model: skip what is up to date, re-run only what changed,
resume an interrupted evaluation, select stages, fail before any work on a bad input."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import pytest
from recipe_helpers import CONFIGS, env, tiny_overrides, write_fixtures

from medtune.config import ConfigError, load_config
from medtune.pipeline import EvalOutput, ExportOutput, StageError, TrainOutput, run_pipeline

QUICKSTART = CONFIGS / "quickstart.yaml"


@pytest.fixture()
def quick(tmp_path, tiny_model_dir):
    """Overrides that run the quickstart recipe on the tiny model in tmp_path/run."""
    fixtures = write_fixtures(tmp_path / "fixtures")
    return tiny_overrides(load_config(QUICKSTART), tiny_model_dir, fixtures, tmp_path) + [f"run_dir={tmp_path / 'run'}"]


def _actions(result) -> dict[str, str]:
    return {o.stage: o.action for o in result.outcomes}


def test_rerun_skips_every_stage_and_a_new_eval_setting_reruns_eval_alone(quick, tmp_path):
    first = run_pipeline(load_config(QUICKSTART, quick), echo=lambda _: None, progress=False)
    assert set(_actions(first).values()) == {"ran"}
    manifest = json.loads((tmp_path / "run" / "stages" / "train.json").read_text())
    assert manifest["status"] == "complete" and manifest["versions"]["medtune"] and manifest["seconds"] >= 0
    assert manifest["section"]["train.max_steps"] == 3 and "records" in manifest["inputs"]

    t0 = time.perf_counter()  # the acceptance: the same command again skips everything, in under 30 s
    proc = subprocess.run([sys.executable, "-m", "medtune", "run", str(QUICKSTART), *quick, "--quiet"], env=env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert time.perf_counter() - t0 < 30
    assert proc.stdout.count(": up to date (config and inputs unchanged since") == 6

    lines: list[str] = []
    third = run_pipeline(load_config(QUICKSTART, [*quick, "eval.max_new_tokens=12"]), echo=lines.append, progress=False)
    assert _actions(third) == {"synth": "skipped", "data": "skipped", "train": "skipped", "eval": "ran",
                               "export": "skipped", "serve": "skipped"}
    assert any("eval: changed: eval.max_new_tokens 8 -> 12" in line for line in lines)
    first_eval, third_eval = first.get(EvalOutput), third.get(EvalOutput)
    assert third_eval.scores[0].n == first_eval.scores[0].n == 2  # the same held-out items (eval.limit=2), afresh
    rows = (third_eval.scores[0].folder / "tuned" / "predictions.jsonl").read_text().splitlines()
    assert len(rows) == 2  # never mixed with the first evaluation's rows


def _card_rows(card) -> list[list[str]]:
    """The evaluation table of a model card: [benchmark, protocol, accuracy (CI), n, base, folder] per row."""
    lines = card.read_text().split("## Evaluation", 1)[1].split("## Files", 1)[0].splitlines()
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("| ") and "---" not in line][1:]


def _model_files(export: ExportOutput) -> dict[str, tuple[int, str]]:
    files = [*export.files.values(), *(p for p in export.merged.rglob("*") if p.is_file())]
    return {str(p): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files}


def test_a_new_evaluation_rewrites_the_model_card_alone(quick, tmp_path, monkeypatch):
    """The card cites the evaluation: when eval reruns alone with other numbers, the card follows it (rewritten from
    export_summary.json) and the merged model and GGUF files are not made again; then everything is up to date."""
    first = run_pipeline(load_config(QUICKSTART, quick), echo=lambda _: None, progress=False)
    export = first.get(ExportOutput)
    before = _model_files(export)
    assert [row[3] for row in _card_rows(export.model_card)] == ["2"]  # eval.limit=2

    lines: list[str] = []
    again = run_pipeline(load_config(QUICKSTART, [*quick, "eval.limit=1"]), echo=lines.append, progress=False)
    assert _actions(again) == {"synth": "skipped", "data": "skipped", "train": "skipped", "eval": "ran",
                               "export": "refreshed", "serve": "skipped"}
    assert any("export: changed: evaluations in the model card changed: refreshing that alone" in line for line in lines)
    assert any(line.startswith("model card rewritten alone") for line in lines)
    score = again.get(EvalOutput).scores[0]
    (row,) = _card_rows(again.get(ExportOutput).model_card)
    assert row[3] == "1" and row[2].startswith(f"{score.accuracy:.4f}") and row[4] == f"{score.base_accuracy:.4f}"
    assert _model_files(again.get(ExportOutput)) == before  # nothing converted, merged or written again
    third = run_pipeline(load_config(QUICKSTART, [*quick, "eval.limit=1"]), echo=lambda _: None, progress=False)
    assert set(_actions(third).values()) == {"skipped"}

    # Checking the card's evaluations needs no model: a run folder whose base is not on this disk stays up to date.
    from medtune.eval import identity
    from medtune.models.source import ModelLoadError

    def no_base(*_a, **_k):
        raise ModelLoadError("the base is not on this disk")

    monkeypatch.setattr(identity, "run_identities", no_base)
    monkeypatch.setattr(identity, "describe_model", no_base)
    fourth = run_pipeline(load_config(QUICKSTART, [*quick, "eval.limit=1"]), echo=lambda _: None, progress=False)
    assert _actions(fourth)["export"] == "skipped"
    monkeypatch.undo()

    # A refresh is a shortcut: when it cannot be taken, the stage runs in full (never a failed run, never a stale card).
    import medtune.export

    def broken(*_a, **_k):
        raise KeyError("merged")

    monkeypatch.setattr(medtune.export, "rewrite_model_card", broken)
    lines.clear()
    fifth = run_pipeline(load_config(QUICKSTART, quick), echo=lines.append, progress=False)
    assert _actions(fifth)["eval"] == "ran" and _actions(fifth)["export"] == "ran"
    assert any("export: refreshing failed (KeyError" in line for line in lines)
    assert [row[3] for row in _card_rows(fifth.get(ExportOutput).model_card)] == ["2"]


def test_interrupted_eval_resumes_from_its_prediction_store(quick, tmp_path):
    first = run_pipeline(load_config(QUICKSTART, quick), echo=lambda _: None, progress=False)
    score = first.get(EvalOutput).scores[0]
    # An evaluation killed after its first item: a `running` manifest, one prediction row left per model.
    stages = tmp_path / "run" / "stages"
    manifest = json.loads((stages / "eval.json").read_text())
    (stages / "eval.json").write_text(json.dumps({**manifest, "status": "running", "outputs": {}, "result": None}))
    for side in ("base", "tuned"):
        store = score.folder / side / "predictions.jsonl"
        store.write_text(store.read_text().splitlines(keepends=True)[0])
    (score.folder / "compare.json").unlink()

    lines: list[str] = []
    again = run_pipeline(load_config(QUICKSTART, quick), echo=lines.append, progress=False)
    assert _actions(again)["eval"] == "resumed" and _actions(again)["train"] == "skipped"
    assert sum("resuming" in line and "1 of the 2 items already in" in line for line in lines) == 2
    assert again.get(EvalOutput).scores[0] == score  # the same numbers as the uninterrupted run


def test_stage_selection_force_and_missing_upstream(quick, tmp_path):
    with pytest.raises(StageError, match="needs the output of an earlier stage"):
        run_pipeline(load_config(QUICKSTART, quick), only=["eval"], echo=lambda _: None, progress=False)
    run_pipeline(load_config(QUICKSTART, quick), echo=lambda _: None, progress=False)
    again = run_pipeline(load_config(QUICKSTART, quick), start="export", force=True, echo=lambda _: None, progress=False)
    assert _actions(again) == {"synth": "not selected", "data": "not selected", "train": "not selected",
                               "eval": "not selected", "export": "ran", "serve": "ran"}
    assert again.get(TrainOutput).steps == 3  # handed on from its manifest
    with pytest.raises(StageError, match="not in this config's stages"):
        run_pipeline(load_config(QUICKSTART, [*quick, "stages=[data,train]"]), only=["eval"], echo=print)


def test_bad_inputs_fail_before_any_stage_runs(quick, tmp_path):
    cfg = load_config(QUICKSTART, [*quick, "stages=[data,train,eval]", f"data.sources=[{tmp_path / 'nope.jsonl'}]",
                                   "eval.benchmarks=[medqaa]"])
    with pytest.raises(ConfigError) as exc:
        run_pipeline(cfg, echo=print)
    paths = {p.path for p in exc.value.problems}
    assert paths == {"data.sources.0", "eval.benchmarks.0"}, exc.value
    assert "nope.jsonl: no such file" in str(exc.value)
    assert not (tmp_path / "run").exists()  # nothing was written, no model was loaded

    proc = subprocess.run([sys.executable, "-m", "medtune", "run", str(QUICKSTART), *quick, f"data.sources=[{tmp_path / 'nope.jsonl'}]",
                           "stages=[data,train]"], env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "nope.jsonl: no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_quickstart_trains_on_the_records_the_old_quickstart_built(tmp_path):
    """The recipe's synth (style demo) + data stages give exactly the old quickstart's training and held-out records
    (the held-out set less the seed 1 cases that repeat a training vignette, numbers aside: synth.demo.case_key)."""
    from medtune.data.io import read_records
    from medtune.synth.demo import case_key, demo_records, write_demo_training_set

    cfg = load_config(QUICKSTART, [f"run_dir={tmp_path / 'run'}", "synth.n=30", "synth.heldout_cases=12"])
    result = run_pipeline(cfg, only=["synth", "data"], echo=lambda _: None, progress=False)
    write_demo_training_set(tmp_path / "old.jsonl", n_cases=30, seed=0, specialties=["cardiology"])
    training = {case_key(r.question) for r in read_records(tmp_path / "old.jsonl")}
    draws = demo_records(48, seed=1, specialties=["cardiology"], tasks=("mcq",), inline_share=0.0)
    old_heldout = [r for r in draws if case_key(r.question) not in training][:12]

    def same(a, b) -> bool:
        keys = ("id", "question", "options", "answer", "reasoning", "response", "context", "task")
        return [[getattr(r, k) for k in keys] for r in a] == [[getattr(r, k) for k in keys] for r in b]

    data = result.results["data"]
    assert same(list(read_records(data.records)), list(read_records(tmp_path / "old.jsonl")))
    assert same(list(read_records(result.results["synth"].heldout)), old_heldout)


def test_train_alone_reads_data_train_files(tmp_path, tiny_model_dir):
    from train_helpers import write_records

    records = write_records(tmp_path / "records.jsonl", n=16)
    overrides = [f"model.base={tiny_model_dir}", "stages=[train]", f"data.train_files=[{records}]", "train.max_steps=2",
                 "train.save_steps=1", f"run_dir={tmp_path / 'run'}"]
    first = run_pipeline(load_config(None, overrides), echo=lambda _: None, progress=False)
    assert _actions(first) == {"train": "ran"} and first.get(TrainOutput).steps == 2
    records.write_text(records.read_text().replace("Case 0:", "Case zero:"))  # the data changed: train again
    lines: list[str] = []
    again = run_pipeline(load_config(None, overrides), echo=lines.append, progress=False)
    assert _actions(again) == {"train": "ran"} and any(f"data file {records} changed" in line for line in lines)
    with pytest.raises(ConfigError, match="the train stage has no data"):
        run_pipeline(load_config(None, overrides[:2]), echo=print)
