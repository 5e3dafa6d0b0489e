"""`medtune merge` / `medtune export` / `medtune export verify` end to end on the tiny model (CPU, seconds)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtune.cli.main import app

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "export"))
from export_helpers import build_run, train_tiny_base  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory) -> Path:
    base = train_tiny_base(tiny_model_dir, tmp_path_factory.mktemp("cli") / "base")
    return build_run(base, base.parent / "run", b_std=0.05)


def test_merge_then_export_then_verify(run_dir, tmp_path):
    res = runner.invoke(app, ["merge", str(run_dir)])
    assert res.exit_code == 0, res.output
    assert (run_dir / "merged" / "config.json").is_file()

    out = tmp_path / "export"
    res = runner.invoke(app, ["export", str(run_dir), "--gguf", "f16,q8_0,q4_k_m", "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "export_summary.json").read_text())
    assert summary["merged"] == str(run_dir / "merged")  # the earlier merge is reused (same adapter sha256)
    assert set(summary["files"]) == {"f16", "q8_0", "q4_k_m"}
    assert summary["passed"] and {r["type"] for r in summary["verify"]} == {"F16", "Q8_0", "Q4_K_M"}
    assert (out / "Modelfile").read_text().count("FROM ./medtune-tiny-test-1-q4_k_m.gguf") == 1
    assert "base_model:" in (out / "README.md").read_text()
    assert not list(out.glob(".*"))  # no intermediate or partial files left behind

    res = runner.invoke(app, ["export", "verify", str(out / "medtune-tiny-test-1-f16.gguf"), "--against", str(run_dir / "merged")])
    assert res.exit_code == 0, res.output
    assert "pass" in res.output


def test_missing_llama_cpp_gives_one_line_fix(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` -> ImportError; find_spec -> None
    res = runner.invoke(app, ["export", str(run_dir), "--gguf", "q4_k_m", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "pip install 'medtune[gguf]'" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()  # refused before doing any work


def test_native_export_without_llama_cpp_still_works(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    from medtune.export import merge_run

    merged = merge_run(run_dir, tmp_path / "merged")
    res = runner.invoke(app, ["export", str(merged), "--gguf", "q8_0", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "o" / "export_summary.json").read_text())
    assert summary["verify"] == [] and "pip install 'medtune[gguf]'" in summary["verify_skipped"]


def test_bad_gguf_type(run_dir):
    res = runner.invoke(app, ["export", str(run_dir), "--gguf", "q3_xyz"])
    assert res.exit_code == 2 and "unknown GGUF type 'q3_xyz'" in res.output
