"""Benchmark data has one home: $MEDTUNE_DATA_ROOT, default ../shared/data beside the checkout.

The suite is run in a subprocess with the data root pointing at an empty folder: locally the
tests that read the data are skipped with the reason and one note at the end; under CI=true
they fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from medtune.utils.paths import DATA_ROOT_ENV, benchmark_data_root, default_data_root

TESTS = Path(__file__).resolve().parents[2]
REPO = TESTS.parent

NEEDS_DATA = '''
def test_reads_medqa(shared_data):
    assert (shared_data / "medqa" / "us_4options_test.jsonl").is_file()

def test_needs_nothing():
    assert True
'''


def _run_without_data(tmp_path: Path, ci: bool) -> tuple[int, str, Path]:
    """Run NEEDS_DATA with the suite's conftest and the data root at an empty folder."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    test_file = tmp_path / "test_uses_data.py"
    test_file.write_text(NEEDS_DATA)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", DATA_ROOT_ENV)}
    env.update({DATA_ROOT_ENV: str(empty), "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(TESTS)])})
    if ci:
        env["CI"] = "true"
    # -p conftest: the suite's own conftest.py (hooks and fixtures) as a plugin for a file outside tests/
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-rs", "-p", "no:cacheprovider",
                          "--rootdir", str(tmp_path), str(test_file)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    return res.returncode, res.stdout + res.stderr, empty


def test_env_var_wins_and_default_is_beside_the_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert benchmark_data_root() == tmp_path
    monkeypatch.delenv(DATA_ROOT_ENV)
    assert default_data_root() == REPO.parent / "shared" / "data"  # running from this checkout
    assert benchmark_data_root() == default_data_root()


def test_missing_data_is_skipped_locally_with_one_note(tmp_path):
    code, out, empty = _run_without_data(tmp_path, ci=False)
    assert code == 0 and "1 passed, 1 skipped" in out, out
    assert out.count("skipped 1 test(s) that read the real benchmark files, in test_uses_data.py.") == 1
    assert f"benchmark data not found at {empty}" in out and DATA_ROOT_ENV in out
    assert "medqa" in out  # which files are missing


def test_missing_data_fails_under_ci(tmp_path):
    code, out, empty = _run_without_data(tmp_path, ci=True)
    assert code == 1 and ("1 failed, 1 passed" in out or "1 passed, 1 error" in out), out
    assert "CI=true and the benchmark data is missing" in out and f"not found at {empty}" in out


def test_doctor_names_the_data_root(monkeypatch, tmp_path):
    from medtune.doctor import data_root_check

    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    check = data_root_check()
    assert not check.ok and not check.required
    assert f"not found at {tmp_path}" in check.detail and "medqa" in check.detail and DATA_ROOT_ENV in check.detail
    (tmp_path / "medqa").mkdir()
    (tmp_path / "medqa" / "us_4options_test.jsonl").write_text("")
    assert "medqa," not in data_root_check().detail  # found now; the other three still missing
