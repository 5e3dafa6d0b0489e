"""Where medtune keeps its cache (``$MEDTUNE_HOME``, default ``~/.cache/medtune``) and reads
benchmark data (``$MEDTUNE_DATA_ROOT``, default ``../shared/data`` beside a source checkout)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

DATA_ROOT_ENV = "MEDTUNE_DATA_ROOT"


def medtune_home() -> Path:
    return Path(os.environ.get("MEDTUNE_HOME", Path.home() / ".cache" / "medtune")).expanduser()


def resource_path(*parts: str) -> Path:
    """Path of a packaged resource under ``medtune/resources``."""
    return Path(str(resources.files("medtune").joinpath("resources", *parts)))


def default_data_root() -> Path | None:
    """``../shared/data`` beside the repository when medtune runs from a source checkout (where CI
    keeps the benchmark files); None for an installed package, which has no such neighbour."""
    repo = Path(__file__).resolve().parents[3]
    if (repo / "pyproject.toml").is_file() and (repo / "src" / "medtune").is_dir():
        return repo.parent / "shared" / "data"
    return None


def benchmark_data_root() -> Path | None:
    """The one answer to "where is the benchmark data" (MedQA, MedMCQA, PubMedQA, MMLU-medical):
    ``$MEDTUNE_DATA_ROOT`` when set, else ``default_data_root()``. The folder may not exist;
    callers that need the files say so (``medtune doctor``, the eval CLI, the test suite).

    >>> import os; os.environ[DATA_ROOT_ENV] = "/data/bench"
    >>> str(benchmark_data_root())
    '/data/bench'
    >>> del os.environ[DATA_ROOT_ENV]
    """
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env).expanduser() if env else default_data_root()


def overwritten_input(out: str | Path, inputs: list[str | Path] | tuple[str | Path, ...]) -> Path | None:
    """The input that writing ``out`` would replace, or None: a command's output must never be one of its inputs.

    Paths are compared resolved (relative spellings, ``..`` and symlinks), and as one file when both
    exist (a hard link too).

    >>> overwritten_input("a/../x.jsonl", ["y.jsonl", "x.jsonl"])
    PosixPath('x.jsonl')
    >>> overwritten_input("z.jsonl", ["x.jsonl"]) is None
    True
    """
    out = Path(out)
    for src in inputs:
        src = Path(src)
        try:
            same = os.path.samefile(out, src) if out.exists() and src.exists() else out.resolve() == src.resolve()
        except OSError:
            same = out.resolve() == src.resolve()
        if same:
            return src
    return None
