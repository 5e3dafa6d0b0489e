"""`medtune eval score` on bad input: outputs never replace an input, bad items are refused, bad output bytes quarantined."""

from __future__ import annotations

import json

import pytest
from evalkit import make_mcq
from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.data.importers import DataError
from medtune.eval.score import ScoreError, score_outputs

runner = CliRunner()


def _items(tmp_path, n=4, extra_lines=()):
    records = make_mcq(n)
    items = tmp_path / "items.jsonl"
    lines = [r.model_dump_json() for r in records]
    for pos, line in extra_lines:
        lines.insert(pos, line)
    items.write_text("\n".join(lines) + "\n")
    return items, records


def _outputs(tmp_path, records, name="outputs.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps({"id": r.id, "output": f"The answer is ({r.answer.letter})."}) + "\n"
                            for r in records))
    return path


@pytest.mark.parametrize("target", ["outputs", "items"])
def test_out_that_is_an_input_is_refused_and_the_input_kept(tmp_path, target):
    items, records = _items(tmp_path)
    outputs = _outputs(tmp_path, records)
    victim = {"outputs": outputs, "items": items}[target]
    before = victim.read_bytes()
    out = tmp_path / "sub" / ".." / victim.name  # another spelling of the same file
    result = runner.invoke(app, ["eval", "score", str(outputs), "--items", str(items), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert f"is the {target} file" in result.output and victim.name in result.output
    assert victim.read_bytes() == before


def test_quarantine_file_derived_from_out_cannot_be_an_input(tmp_path):
    items, records = _items(tmp_path)
    outputs = _outputs(tmp_path, records, name="res.quarantine.jsonl")  # what --out res.jsonl would quarantine to
    before = outputs.read_bytes()
    with pytest.raises(ScoreError, match="quarantine file of --out .*res.jsonl would be .*res.quarantine.jsonl, "
                                         "which is the outputs file"):
        score_outputs(outputs, items, out=tmp_path / "res.jsonl", log=lambda m: None)
    assert outputs.read_bytes() == before and not (tmp_path / "res.jsonl").exists()


@pytest.mark.parametrize("bad, line, field", [
    ('{"id": "broken", "source": ', 3, "line"),  # not JSON
    (json.dumps({"id": "z", "source": "t", "task": "mcq", "question": "Q?", "options": {"A": "a", "B": "b"},
                 "answer": {"letter": "Z"}}), 3, "answer.letter"),
])
def test_a_bad_item_is_refused_naming_the_items_file_line_and_field(tmp_path, bad, line, field):
    """The items define what is scored: an unreadable item is not scored silently on fewer items (nor its
    output blamed as an unknown id)."""
    items, records = _items(tmp_path, extra_lines=[(2, bad)])
    outputs = _outputs(tmp_path, records)
    with pytest.raises(DataError, match=rf"items.jsonl:{line}: field {field}: .*defines what is scored"):
        score_outputs(outputs, items, log=lambda m: None)
    result = runner.invoke(app, ["eval", "score", str(outputs), "--items", str(items)])
    assert result.exit_code == 2 and f"items.jsonl:{line}: field {field}" in result.output
    assert not (tmp_path / "outputs.quarantine.jsonl").exists()


def test_an_output_line_that_is_not_utf8_is_quarantined(tmp_path):
    items, records = _items(tmp_path)
    outputs = _outputs(tmp_path, records)
    outputs.write_bytes(outputs.read_bytes() + b'{"id": "q9", "output": "The answer is \xff B."}\n')
    summary = score_outputs(outputs, items, out=tmp_path / "rows.jsonl", log=lambda m: None)
    assert summary["n"] == 4 and summary["accuracy"] == 1.0 and summary["quarantined"] == 1
    bad = [json.loads(x) for x in (tmp_path / "rows.quarantine.jsonl").read_text().splitlines()]
    assert [(b["line"], b["field"]) for b in bad] == [(5, "(line)")]
    assert "invalid UTF-8" in bad[0]["reason"] and bad[0]["file"] == str(outputs)
