"""`medtune data preview` shows what training sees, with the no-loss spans marked."""

from __future__ import annotations

from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.data.records import Answer, Record


def test_preview_marks_no_loss_spans_and_reports_refusals(tmp_path, tiny_model_dir):
    good = Record.create(source="t", task="mcq", question="Chest pain and diaphoresis. Diagnosis?",
                         options={"A": "Myocardial infarction", "B": "GERD"}, answer=Answer(letter="A"), reasoning="Ischemia.")
    too_long = Record.create(source="t", task="open", question="x " * 300, answer=Answer(text="y"))
    path = tmp_path / "r.jsonl"
    path.write_text(good.model_dump_json() + "\n" + too_long.model_dump_json() + "\n")
    result = CliRunner().invoke(app, ["data", "preview", "2", str(path), "--plain", f"model.base={tiny_model_dir}",
                                      "data.max_length=128"])
    assert result.exit_code == 0, result.output
    assert "[no-loss]<|im_start|>user\nChest pain and diaphoresis." in result.output
    assert "<|im_start|>assistant\n[/no-loss]## Thinking" in result.output
    assert "The answer is (A) Myocardial infarction." in result.output
    assert "refused (too_long)" in result.output


def test_preview_reads_a_medtune_folder_and_names_a_bad_path(tmp_path, tiny_model_dir):
    from medtune.synth.run import run_synth

    run_synth(tmp_path / "synth", 2, seed=0, tasks=["diagnosis"])
    result = CliRunner().invoke(app, ["data", "preview", "1", str(tmp_path / "synth"), "--plain", f"model.base={tiny_model_dir}"])
    assert result.exit_code == 0, result.output
    first = (tmp_path / "synth" / "records.jsonl").read_text().splitlines()[0]
    assert f"#1 {Record.model_validate_json(first).id}:" in result.output  # records.jsonl, not cases.jsonl
    bad = CliRunner().invoke(app, ["data", "preview", "1", str(tmp_path / "nope"), f"model.base={tiny_model_dir}"])
    assert bad.exit_code == 2 and "nope: no such file or folder" in bad.output and "Traceback" not in bad.output
