"""Shared fixtures: a tiny offline model/tokenizer, the embedded SmolLM2 (slow), shared data."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tiny import build_tiny_model_dir, build_tiny_tokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDTUNE_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA (gpu marker); run on a GPU machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """Folder with a 2-layer random Llama (hidden 32) + tiny ChatML tokenizer."""
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tiny_tok"))


@pytest.fixture()
def tiny_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    """The embedded SmolLM2-135M materialized as an HF folder (slow tests only)."""
    from medtune.models.embedded import materialize_embedded

    return materialize_embedded()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data with the real benchmark files; a clear failure if it is missing."""
    if not (SHARED_DATA / "medqa").is_dir():
        pytest.fail(f"benchmark data not found at {SHARED_DATA}: tests read ../shared/data (or set MEDTUNE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture()
def browser_page():
    """A headless Chromium page (tests/browser.py); skipped without a browser, failed under CI=true."""
    from browser import chromium_page, chromium_path

    if chromium_path() is None or importlib.util.find_spec("playwright") is None:
        msg = "headless Chromium test: needs Debian's chromium and the playwright package (scripts/test.sh installs both)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    with chromium_page() as page:
        yield page
