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
