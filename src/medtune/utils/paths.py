"""Where medtune keeps its cache (``$MEDTUNE_HOME``, default ``~/.cache/medtune``)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def medtune_home() -> Path:
    return Path(os.environ.get("MEDTUNE_HOME", Path.home() / ".cache" / "medtune")).expanduser()


def resource_path(*parts: str) -> Path:
    """Path of a packaged resource under ``medtune/resources``."""
    return Path(str(resources.files("medtune").joinpath("resources", *parts)))
