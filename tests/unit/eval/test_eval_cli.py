"""`medtune eval score|list|run|compare` end to end; score must not import torch/transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from evalkit import make_mcq
from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.data.importers import iter_records

DRIVER = """
import json, sys
from medtune.cli.main import app
code = 0
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("torch", "transformers", "peft", "llama_cpp") if m in sys.modules)
print("HEAVY=" + json.dumps(heavy))
sys.exit(code or 0)
"""


def _outputs(shared_data: Path, tmp_path: Path) -> tuple[Path, Path, list]:
    items = shared_data / "medqa" / "us_4options_test.jsonl"
    records = [r for _, r in zip(range(6), iter_records(items, "medqa"))]
    texts = [
        f"## Thinking\nA seems possible.\n## Final Response\nThe answer is ({records[0].answer.letter}).",  # right
        f"Answer: {records[1].answer.letter}",  # right
        "I cannot tell.",  # unparseable
        "Answer: A or B",  # conflicting
        f"The answer is ({'A' if records[4].answer.letter != 'A' else 'B'}).",  # wrong
    ]
    lines = [json.dumps({"id": r.id, "output": t}) for r, t in zip(records, texts)]
    lines += ["not json", json.dumps({"id": "nope", "output": "A"}), json.dumps({"id": records[0].id})]
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text("\n".join(lines) + "\n")
    return outputs, items, records


def test_score_without_loading_a_model(shared_data, tmp_path):
    outputs, items, _ = _outputs(shared_data, tmp_path)
    per_item = tmp_path / "per_item.jsonl"
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, "eval", "score", str(outputs), "--items", str(items), "--out", str(per_item)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "HEAVY=[]" in proc.stdout  # no model library was imported
    assert "accuracy 0.4000" in proc.stdout and "unparseable 2" in proc.stdout and "quarantined 3" in proc.stdout
    rows = [json.loads(x) for x in per_item.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok", "ok", "unparseable", "conflicting", "ok"]
    assert [r["correct"] for r in rows] == [True, True, False, False, False]
    quarantine = [json.loads(x) for x in per_item.with_suffix(".quarantine.jsonl").read_text().splitlines()]
    assert [(q["line"], q["field"]) for q in quarantine] == [(6, "(line)"), (7, "id"), (8, "output")]


def test_score_with_no_usable_rows_fails_clearly(shared_data, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    result = CliRunner().invoke(app, ["eval", "score", str(bad), "--items", str(shared_data / "medqa" / "us_4options_test.jsonl")])
    assert result.exit_code == 2
    assert "no usable output rows" in result.output and "line 1 field output" in result.output


def test_score_refuses_items_with_a_duplicate_id(tmp_path):
    """Outputs name their item by id: with two items behind one id, one item's output would be dropped."""
    from medtune.eval.score import ScoreError, score_outputs

    records = make_mcq(2)
    records[1] = records[1].model_copy(update={"id": records[0].id})
    items = tmp_path / "items.jsonl"
    items.write_text("".join(r.model_dump_json() + "\n" for r in records))
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text(json.dumps({"id": records[0].id, "output": "The answer is (A)."}) + "\n")
    with pytest.raises(ScoreError, match=f"items.jsonl: item id '{records[0].id}' occurs twice"):
        score_outputs(outputs, items, log=lambda m: None)


def test_list_shows_every_declared_benchmark_and_where_its_files_are():
    from medtune.cli.eval import benchmark_files
    from medtune.eval.benchmarks import get_benchmark

    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["eval", "list"])
    assert result.exit_code == 0
    for name in ("medqa", "medmcqa", "pubmedqa", "mmlu_medical", "dev_vignettes"):
        assert name in result.output
    assert benchmark_files(get_benchmark("dev_vignettes")) == "dev_vignettes.jsonl (packaged with medtune)"
    assert benchmark_files(get_benchmark("medqa")) == "DATA_ROOT/medqa/us_4options_test.jsonl"
    assert "dev_vignettes.jsonl (packaged with medtune)" in result.output and "under --data-root" not in result.output


def test_unknown_benchmark_and_missing_data_root_are_clean_errors(tiny_model_dir, tmp_path):
    r = CliRunner().invoke(app, ["eval", "run", str(tiny_model_dir), "-b", "medqaa", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "unknown benchmark 'medqaa'" in r.output
    r = CliRunner().invoke(app, ["eval", "run", str(tiny_model_dir), "-b", "medqa", "--data-root", str(tmp_path)])
    assert r.exit_code == 2 and "no file matches" in r.output


def test_run_then_compare_on_a_record_file(tiny_model_dir, two_runs, tmp_path):
    items = tmp_path / "heldout.jsonl"
    items.write_text("".join(r.model_dump_json() + "\n" for r in make_mcq(6)))
    runner = CliRunner()
    for name, model in (("a", str(tiny_model_dir)), ("b", str(two_runs[0]))):
        r = runner.invoke(app, ["eval", "run", model, "-b", str(items), "--out", str(tmp_path / name), "--device", "cpu"])
        assert r.exit_code == 0, r.output
        assert "accuracy" in r.output and "95% CI" in r.output
    r = runner.invoke(app, ["eval", "compare", str(tmp_path / "a" / "heldout-loglik"), str(tmp_path / "b" / "heldout-loglik"),
                            "--out", str(tmp_path / "cmp")])
    assert r.exit_code == 0, r.output
    assert "6 common items" in r.output and (tmp_path / "cmp" / "compare.html").is_file()


def test_real_benchmark_loglik_on_a_few_items(tiny_model_dir, shared_data, tmp_path):
    """The shipped declarations work with the real files and the data importers (ids are PubMed ids)."""
    r = CliRunner().invoke(app, ["eval", "run", str(tiny_model_dir), "-b", "pubmedqa", "--limit", "3",
                                 "--data-root", str(shared_data), "--out", str(tmp_path), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (tmp_path / "pubmedqa-loglik" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["id"].isdigit() and set(r["option_probs"]) == {"A", "B", "C"} for r in rows)
    assert rows[0]["prompt"].startswith("Abstract: ") and rows[0]["prompt"].endswith("\nAnswer:")


def test_run_on_an_hf_dataset_and_a_synth_folder(tiny_model_dir, tmp_path):
    """Eval record sources follow the data contract: hf:ID (here a dataset saved with `datasets`) and medtune folders."""
    import datasets

    from medtune.synth.run import run_synth

    rows = [{"question": r.question, "options": r.options, "answer_idx": r.answer.letter, "answer": r.options[r.answer.letter]}
            for r in make_mcq(4)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "mcq_ds"))
    run_synth(tmp_path / "synth", 3, seed=0, tasks=["mcq"])
    runner = CliRunner()
    r = runner.invoke(app, ["eval", "run", str(tiny_model_dir), "-b", f"hf:{tmp_path / 'mcq_ds'}", "-b", str(tmp_path / "synth"),
                            "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    hf_rows = [json.loads(x) for x in (tmp_path / "out" / "mcq_ds_train-loglik" / "predictions.jsonl").read_text().splitlines()]
    synth_rows = (tmp_path / "out" / "synth-loglik" / "predictions.jsonl").read_text().splitlines()
    assert [x["gold"] for x in hf_rows] == [row["answer_idx"] for row in rows] and len(synth_rows) == 3
    bad = runner.invoke(app, ["eval", "run", str(tiny_model_dir), "-b", str(tmp_path / "out"), "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "not a records folder" in bad.output


def test_run_flags_set_the_prompt_and_overwrite_starts_over(tiny_model_dir, tmp_path):
    """--reasoning-format / --system-prompt override the training run's manifest; another prompt into the same
    folder is refused, --overwrite starts it over."""
    from evalkit import make_run

    run = make_run(tiny_model_dir, tmp_path / "run", 3)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "system_prompt": "You are a careful clinician.",
                                                   "reasoning_format": "think"}))
    items = tmp_path / "heldout.jsonl"
    items.write_text("".join(r.model_dump_json() + "\n" for r in make_mcq(4)))
    out, folder = tmp_path / "ev", tmp_path / "ev" / "heldout-loglik"
    base = ["eval", "run", str(run), "-b", str(items), "--out", str(out), "--device", "cpu", "--batch-size", "4"]
    runner = CliRunner()
    r = runner.invoke(app, [*base, "--reasoning-format", "plain", "--system-prompt", ""])
    assert r.exit_code == 0, r.output
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["prompt"] == {"system_prompt": None, "reasoning_format": "plain",
                                 "from": "reasoning format: override; system prompt: override"}
    rows = [json.loads(x) for x in (folder / "predictions.jsonl").read_text().splitlines()]
    assert rows[0]["prompt"].startswith("<|im_start|>user") and "## Thinking" not in rows[0]["prompt"]

    r = runner.invoke(app, base)  # the manifest's prompt (think, the clinician) is another evaluation
    assert r.exit_code == 2 and "prompt.reasoning_format: 'plain' -> 'think'" in r.output
    r = runner.invoke(app, [*base, "--overwrite"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (folder / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(x["prompt"].startswith("<|im_start|>system\nYou are a careful clinician.") for x in rows)
    assert json.loads((folder / "summary.json").read_text())["prompt"]["reasoning_format"] == "think"


def test_run_loads_the_model_in_the_configured_dtype(tiny_model_dir, tmp_path):
    """`medtune eval run MODEL model.dtype=float32` evaluated in bf16 on a CPU with native bf16: the config field
    was accepted and ignored. Both dtypes are asked for here, so the check holds on any CPU."""
    items = tmp_path / "items.jsonl"
    items.write_text("".join(r.model_dump_json() + "\n" for r in make_mcq(4)))
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / dtype
        r = CliRunner().invoke(app, ["eval", "run", str(tiny_model_dir), f"model.dtype={dtype}", "-b", str(items),
                                     "--out", str(out), "--device", "cpu"])
        assert r.exit_code == 0, r.output
        (folder,) = out.glob("*-loglik")
        summary = json.loads((folder / "summary.json").read_text())
        fingerprint = json.loads((folder / "fingerprint.json").read_text())
        assert summary["settings"]["dtype"] == fingerprint["model"]["dtype"] == dtype
