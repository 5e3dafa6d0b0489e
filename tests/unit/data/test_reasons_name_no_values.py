"""What a rejected row's summary says (the import table, manifest.json's reasons, train's top reasons) names what is
wrong, never the row's values: a value stays in the quarantine file, after the reason's colon."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medtune.cli.main import app

MARK = "JOHN SMITH 64M MRN 1234567"
ROWS = {  # format -> a row whose offending field holds the marker
    "medqa": {"question": "q?", "options": {"A": "x", "B": "y"}, "answer_idx": MARK},
    "medqa-text": {"question": "q?", "options": {"A": "x", "B": "y"}, "answer_idx": "A", "answer": MARK},
    "medmcqa": {"question": "q?", "opa": "x", "opb": "y", "opc": "z", "opd": "w", "cop": MARK},
    "pubmedqa": {"pubid": "1", "QUESTION": "q?", "CONTEXTS": ["c"], "final_decision": MARK},
    "messages": {"messages": [{"role": MARK, "content": "hi"}, {"role": "assistant", "content": "ok"}]},
}


@pytest.mark.parametrize("name", list(ROWS))
def test_import_summaries_name_the_problem_not_the_value(name, tmp_path):
    fmt = name.split("-")[0]
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(ROWS[name]) + "\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["data", "import", str(src), "--out", str(out), "--format", fmt],
                                env={"COLUMNS": "200"})
    assert MARK.lower() not in result.output.lower(), result.output  # pubmedqa lowercases the decision it reports
    manifest = (out / "manifest.json").read_text() if (out / "manifest.json").is_file() else ""
    assert MARK.lower() not in manifest.lower()
    quarantined = "".join(p.read_text() for p in out.rglob("*quarantine*.jsonl"))
    assert MARK in quarantined  # the value is kept where the row is kept, for whoever fixes the file


def test_a_headerless_csv_is_not_printed_as_field_names(tmp_path):
    src = tmp_path / "notes.csv"
    src.write_text(f"1,{MARK} crushing chest pain,MI\n2,another case,PE\n")
    result = CliRunner().invoke(app, ["data", "import", str(src), "--out", str(tmp_path / "out")], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "cannot detect the format" in result.output, result.output
    assert MARK not in result.output and "3 columns" in result.output
