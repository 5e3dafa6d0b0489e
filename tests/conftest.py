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
DATA_FIXTURE = "shared_data"  # the one way a test asks for the real benchmark files
_DATA_NOTE = pytest.StashKey[tuple]()  # (count, test files, where to put the data) for the summary


def _data_root_problem() -> str | None:
    """None when every declared benchmark's files are under the data root, else where to put them."""
    from medtune.doctor import data_root_hint, missing_benchmarks
    from medtune.utils.paths import benchmark_data_root

    root = benchmark_data_root()
    missing = missing_benchmarks(root)
    return f"{', '.join(missing)} missing: {data_root_hint(root)}" if missing else None


def pytest_collection_modifyitems(config, items):
    import torch

    needs_data = [item for item in items if DATA_FIXTURE in getattr(item, "fixturenames", ())]
    problem = _data_root_problem() if needs_data else None
    # Locally the tests that read real benchmark data are skipped, with the reason, and the run
    # says so once at the end; under CI=true missing data fails them (in the fixture below).
    if problem and os.environ.get("CI") != "true":
        skip_data = pytest.mark.skip(reason="needs the real benchmark data (where to put it: the 'benchmark data' note)")
        for item in needs_data:
            item.add_marker(skip_data)
        config.stash[_DATA_NOTE] = (len(needs_data), sorted({item.nodeid.split("::")[0] for item in needs_data}), problem)
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA (gpu marker); run on a GPU machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _DATA_NOTE not in config.stash:
        return
    count, files, problem = config.stash[_DATA_NOTE]
    terminalreporter.write_sep("-", "benchmark data")
    terminalreporter.write_line(f"skipped {count} test(s) that read the real benchmark files, in {', '.join(files)}.")
    terminalreporter.write_line(problem)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """Folder with a 2-layer random Llama (hidden 32) + tiny ChatML tokenizer."""
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture()
def hub_two_revisions(tmp_path, monkeypatch, tiny_model_dir) -> dict:
    """An offline Hub cache (``huggingface_hub.constants.HF_HUB_CACHE``) holding ``acme/tiny`` at two revisions of
    different weights: ``main`` (what an unpinned load gets) and ``pinned``, with their snapshot folders."""
    import huggingface_hub.constants
    from tiny import build_hub_snapshot

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    main, pinned = "a" * 40, "b" * 40
    other = build_tiny_model_dir(tmp_path / "other-weights", seed=1)
    return {"repo": "acme/tiny", "main": main, "pinned": pinned,
            "main_dir": build_hub_snapshot(cache, "acme/tiny", main, tiny_model_dir, main=True),
            "pinned_dir": build_hub_snapshot(cache, "acme/tiny", pinned, other)}


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
    """The benchmark data root (``$MEDTUNE_DATA_ROOT``, default ../shared/data beside the repo).

    Reached only when the data is there or under CI=true (elsewhere such tests are skipped at
    collection), so a missing folder here is a CI failure with the fix in the message.
    """
    from medtune.utils.paths import benchmark_data_root

    problem = _data_root_problem()
    if problem:
        pytest.fail(f"CI=true and the benchmark data is missing: {problem}")
    return benchmark_data_root()


@pytest.fixture()
def no_data_root(tmp_path, monkeypatch) -> Path:
    """A machine without the benchmark data: ``$MEDTUNE_DATA_ROOT`` points at an empty folder
    (otherwise the default ../shared/data beside the checkout is found, as in CI)."""
    empty = tmp_path / "no-benchmark-data"
    empty.mkdir()
    monkeypatch.setenv("MEDTUNE_DATA_ROOT", str(empty))
    return empty


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
