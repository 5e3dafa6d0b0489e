"""Fixtures for report tests: a real tiny-model run and a 4,000-item evaluation (see runkit.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from runkit import build_large_eval, build_tiny_run  # noqa: E402


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A quickstart-shaped run folder from the tiny model, with its report.html written."""
    from medtune.report import write_run_report

    run = build_tiny_run(tmp_path_factory.mktemp("report_run"))
    write_run_report(run)
    return run


@pytest.fixture(scope="session")
def large_eval(tmp_path_factory) -> Path:
    """Two 4,000-item evaluations and their comparison; compare.html is the report."""
    return build_large_eval(tmp_path_factory.mktemp("report_large"))
