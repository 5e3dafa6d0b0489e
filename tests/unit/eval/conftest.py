"""Fixtures for eval tests (helpers live in evalkit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from evalkit import make_run


@pytest.fixture(scope="session")
def two_runs(tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    return make_run(tiny_model_dir, root / "run1", 1), make_run(tiny_model_dir, root / "run2", 2)
