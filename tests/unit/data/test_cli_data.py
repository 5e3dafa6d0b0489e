"""`medtune data ...` end to end on small files: outputs, manifest, exit codes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.data.io import read_records

runner = CliRunner()


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) if isinstance(r, dict) else r for r in rows) + "\n")
    return path


ROWS = [
    {"question": "Q1?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 2, "id": "m1", "subject_name": "Anatomy"},
    '{"question": "broken',
    {"question": "Q3?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 9, "id": "m3"},
    {"question": "Q4?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 4, "id": "m4"},
]


def test_import_writes_records_quarantine_and_manifest(tmp_path):
    src = _write(tmp_path / "mcq.jsonl", ROWS)
    out = tmp_path / "out"
    result = runner.invoke(app, ["data", "import", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    recs = list(read_records(out / "records.jsonl"))
    assert [(r.id, r.answer.letter) for r in recs] == [("m1", "B"), ("m4", "D")]
    bad = [json.loads(x) for x in (out / "quarantine.jsonl").read_text().splitlines()]
    assert [(b["line"], b["field"]) for b in bad] == [(2, "line"), (3, "cop")]
    assert "out of range" in bad[1]["reason"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["summary"]["seen"] == 4 == manifest["summary"]["accepted"] + manifest["summary"]["quarantined"]
    assert manifest["inputs"][0]["format"] == "medmcqa" and len(manifest["inputs"][0]["sha256"]) == 64

    strict = runner.invoke(app, ["data", "import", str(src), "--out", str(tmp_path / "o2"), "--strict"])
    assert strict.exit_code == 1 and (tmp_path / "o2" / "quarantine.jsonl").exists()
    clean = _write(tmp_path / "clean.jsonl", [ROWS[0], ROWS[3]])
    assert runner.invoke(app, ["data", "import", str(clean), "--out", str(tmp_path / "o3"), "--strict"]).exit_code == 0


def test_validate_lists_file_line_field(tmp_path):
    src = _write(tmp_path / "mcq.jsonl", ROWS)
    q = tmp_path / "q.jsonl"
    result = runner.invoke(app, ["data", "validate", str(src), "--quarantine", str(q), "--strict"])
    assert result.exit_code == 1
    assert f"{src}:2 line: bad JSON" in result.output
    assert f"{src}:3 cop: answer index 9 out of range for 4 options (1-based)" in result.output
    assert len(q.read_text().splitlines()) == 2


def test_bad_inputs_exit_2_with_a_clear_message(tmp_path):
    weird = _write(tmp_path / "weird.jsonl", [{"foo": 1}])
    result = runner.invoke(app, ["data", "import", str(weird), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "cannot detect the format" in result.output
    result = runner.invoke(app, ["data", "import", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no such file" in result.output
    result = runner.invoke(app, ["data", "mix", f"{weird}:weight=x", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "bad option" in result.output


def test_pubmedqa_ids_option_through_cli(shared_data, tmp_path):
    pqal, ids = shared_data / "pubmedqa" / "ori_pqal.json", shared_data / "pubmedqa" / "test_ground_truth.json"
    result = runner.invoke(app, ["data", "import", str(pqal), "--out", str(tmp_path / "t"), "--option", f"ids_file={ids}"])
    assert result.exit_code == 0, result.output
    assert {r.id for r in read_records(tmp_path / "t" / "records.jsonl")} == set(json.loads(ids.read_text()))


def test_stats_percentiles_and_histogram(tmp_path, tiny_model_dir):
    src = _write(tmp_path / "o1.jsonl", [{"Question": "Q " + "word " * i, "Complex_CoT": "r " * i, "Response": "A."}
                                         for i in range(1, 41)])
    png, js = tmp_path / "h.png", tmp_path / "s.json"
    result = runner.invoke(app, ["data", "stats", str(src), "--tokenizer", str(tiny_model_dir), "--png", str(png),
                                 "--json", str(js), "--max-length", "60", "--reasoning-format", "think"])
    assert result.exit_code == 0, result.output
    stats = json.loads(js.read_text())
    tok = stats["tokens"]
    assert stats["counts"]["records"] == 40 and stats["counts"]["by_source"] == {"medical_o1": 40}
    assert tok["count"] == 40 and tok["min"] < tok["p50"] < tok["p90"] <= tok["p99"] <= tok["max"]
    assert 0 < tok["over_max_length"] < 40
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
