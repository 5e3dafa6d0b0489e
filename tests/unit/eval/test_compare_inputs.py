"""`medtune eval compare` on malformed predictions.jsonl: file and line named, exit 2; a torn last line still ignored."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.eval.report import _correct_by_id
from medtune.eval.store import PredictionStore

runner = CliRunner()
GOOD = b'{"id": "1", "correct": true}\n'


def _folder(path, body: bytes):
    path.mkdir()
    (path / "predictions.jsonl").write_bytes(body)
    (path / "summary.json").write_text(json.dumps({"benchmark": "x", "protocol": "cot"}))
    return path


@pytest.mark.parametrize("line, message", [
    (b'{"id": "2"}', "predictions.jsonl:2: field correct: missing"),
    (b'{"id": "2", "correct": "false"}', "predictions.jsonl:2: field correct: 'false', not true or false"),
    (b"[1]", "predictions.jsonl:2: corrupt prediction row (expected an object with an id, got a JSON list)"),
    (b'{"correct": true}', "predictions.jsonl:2: corrupt prediction row (expected an object with an id"),
    (b"\xff", "predictions.jsonl:2: corrupt prediction row (not UTF-8"),
])
def test_a_malformed_row_is_named_by_file_and_line(tmp_path, line, message):
    a = _folder(tmp_path / "a", GOOD + b'{"id": "2", "correct": false}\n')
    b = _folder(tmp_path / "b", GOOD + line + b'\n{"id": "3", "correct": true}\n')
    with pytest.raises(ValueError) as e:
        _correct_by_id(b)
    assert message in str(e.value)
    result = runner.invoke(app, ["eval", "compare", str(a), str(b), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert message in " ".join(result.output.split())


@pytest.mark.parametrize("tail", [b'{"id": "2", "corr', b'{"id": "2", "output": "caf\xc3'])
def test_a_torn_last_line_is_still_ignored(tmp_path, tail):
    """The append-only log's crash case: the interrupted last write (no newline), even cut inside a UTF-8 character."""
    store = PredictionStore(tmp_path / "predictions.jsonl")
    store.path.write_bytes(GOOD + tail)
    assert store.load() == [{"id": "1", "correct": True}]
    assert _correct_by_id(tmp_path) == {"1": True}
    store.append([{"id": "3", "correct": False}])
    assert store.done_ids() == {"1", "3"}
