"""`medtune data split|mix|contamination|import` on bad input: nothing dropped silently, no input replaced,
flags validated before anything is written."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.data.importers import DataError
from medtune.data.io import read_records
from medtune.data.pipeline import check_contamination

runner = CliRunner()


def _medqa(i):
    return json.dumps({"question": f"A {i}-year-old with fever and neck stiffness; likely diagnosis {i}?",
                       "options": {"A": "Meningitis", "B": "Flu", "C": "Cold", "D": "Migraine"},
                       "answer_idx": "A", "answer": "Meningitis"}).encode()


BAD_JSON = b'{"question": "x", '
BAD_UTF8 = b'{"question": "bad \xff byte", "options": {"A": "a", "B": "b"}, "answer_idx": "A", "answer": "a"}'


def _source(tmp_path, name="src.jsonl"):
    """7 lines: 5 good MCQs, one bad JSON (line 3), one invalid UTF-8 (line 5)."""
    lines = [_medqa(0), _medqa(1), BAD_JSON, _medqa(2), BAD_UTF8, _medqa(3), _medqa(4)]
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _benchmark(tmp_path, extra: bytes | None = None):
    rows = [json.dumps({"id": f"b{i}", "source": "bench", "task": "mcq", "question": f"Unrelated benchmark question {i}?",
                        "options": {"A": "x", "B": "y"}, "answer": {"letter": "A"}}).encode() for i in range(3)]
    if extra is not None:
        rows.insert(1, extra)
    path = tmp_path / "bench.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path


def _quarantined(path):
    return [(q["line"], q["reason"].split(":")[0]) for q in map(json.loads, path.read_text().splitlines())]


EXPECTED = [(3, "bad JSON"), (5, "invalid UTF-8")]


def test_contamination_refuses_drop_onto_its_own_source(tmp_path):
    src = _source(tmp_path)
    before = src.read_bytes()
    result = runner.invoke(app, ["data", "contamination", str(src), "--against", str(_benchmark(tmp_path)),
                                 "--drop", str(tmp_path / "." / "src.jsonl")])
    assert result.exit_code == 2, result.output
    assert "--drop" in result.output and "is the input file" in result.output
    assert src.read_bytes() == before


def test_contamination_refuses_drop_onto_the_benchmark(tmp_path):
    bench = _benchmark(tmp_path)
    before = bench.read_bytes()
    result = runner.invoke(app, ["data", "contamination", str(_source(tmp_path)), "--against", str(bench),
                                 "--drop", str(bench)])
    assert result.exit_code == 2 and "is the input file" in result.output
    assert bench.read_bytes() == before


def test_contamination_quarantines_unreadable_training_rows(tmp_path):
    src, clean = _source(tmp_path), tmp_path / "clean.jsonl"
    result = runner.invoke(app, ["data", "contamination", str(src), "--against", str(_benchmark(tmp_path)),
                                 "--drop", str(clean)])
    assert result.exit_code == 0, result.output
    assert len(list(read_records(clean))) == 5
    qfile = tmp_path / "clean.quarantine.jsonl"
    assert _quarantined(qfile) == EXPECTED
    assert "2 row(s) quarantined" in result.output and "clean.quarantine.jsonl" in " ".join(result.output.split())
    # without an output file the rows are listed with file and line
    listed = runner.invoke(app, ["data", "contamination", str(src), "--against", str(_benchmark(tmp_path))])
    assert listed.exit_code == 0 and f"{src}:3 line: bad JSON" in listed.output and f"{src}:5 line: invalid UTF-8" in listed.output
    # the library without a quarantine refuses rather than drop a row silently
    with pytest.raises(DataError, match=r"src.jsonl:3: field line: bad JSON"):
        check_contamination([src], [_benchmark(tmp_path)], drop_to=tmp_path / "c2.jsonl")
    assert not (tmp_path / "c2.jsonl").exists()


@pytest.mark.parametrize("bad", [BAD_JSON, BAD_UTF8])
def test_contamination_refuses_a_benchmark_with_an_unreadable_row(tmp_path, bad):
    """A screen that skips benchmark items would call contaminated records clean."""
    result = runner.invoke(app, ["data", "contamination", str(_source(tmp_path)),
                                 "--against", str(_benchmark(tmp_path, bad)), "--drop", str(tmp_path / "clean.jsonl")])
    assert result.exit_code == 2, result.output
    assert "bench.jsonl:2: field line:" in result.output and "benchmark item must be indexed" in " ".join(result.output.split())
    assert not (tmp_path / "clean.jsonl").exists()


def test_split_quarantines_unreadable_rows(tmp_path):
    out = tmp_path / "sp"
    result = runner.invoke(app, ["data", "split", str(_source(tmp_path)), "--out", str(out), "--val", "0.3"])
    assert result.exit_code == 0, result.output
    kept = sum(len(list(read_records(out / f"{s}.jsonl"))) for s in ("train", "val"))
    assert kept == 5 and _quarantined(out / "quarantine.jsonl") == EXPECTED
    assert "2 row(s) quarantined" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["summary"]["quarantined"] == 2 and manifest["inputs"][0]["quarantined"] == 2


def test_mix_quarantines_unreadable_rows_once(tmp_path):
    out = tmp_path / "mx"
    result = runner.invoke(app, ["data", "mix", f"{_source(tmp_path)}:weight=2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(list(read_records(out / "records.jsonl"))) == 10
    assert _quarantined(out / "quarantine.jsonl") == EXPECTED  # once, though the source is read in several passes
    assert "2 row(s) quarantined" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["summary"]["quarantined"] == 2 and manifest["summary"]["sources"][0]["quarantined"] == 2


def test_mix_total_is_validated_by_the_config_field(tmp_path):
    out = tmp_path / "mx"
    result = runner.invoke(app, ["data", "mix", str(_source(tmp_path)), "--out", str(out), "--total", "0"])
    assert result.exit_code == 2
    assert "--total" in result.output and "greater than or equal to 1" in result.output and "data.mix_total" in result.output
    assert not out.exists()


@pytest.mark.parametrize("args", [["split", "--val", "1.5"], ["split", "--stratify", "colour"],
                                  ["import", "--option", "foo=bar"]])
def test_bad_flags_leave_no_output_folder(tmp_path, args):
    out = tmp_path / "new" / "out"
    result = runner.invoke(app, ["data", args[0], str(_source(tmp_path)), "--out", str(out), *args[1:]])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("flags", [["--format", "medqa"], ["--option", "ids_file=x"], ["--reject-duplicate-options"]])
def test_import_with_config_refuses_the_flags_of_command_line_files(tmp_path, flags):
    src = _source(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(f"name: t\nrun_dir: {tmp_path / 'run'}\ndata:\n  contamination: off\n  sources:\n    - path: {src}\n")
    result = runner.invoke(app, ["data", "import", "-c", str(config), *flags])
    assert result.exit_code == 2, result.output
    assert flags[0] in result.output and "data.sources" in result.output
    assert not (tmp_path / "run").exists()
