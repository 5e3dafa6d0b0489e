"""What a stage depends on, as hashes: its config section (flattened values) and its input files.

File contents are hashed with sha256 through the one file-hash cache (``utils.hashcache``: by
path, size and mtime, in RUN/stages/fingerprints.json), so a re-run of an unchanged pipeline
reads no large file again. Folders hash the sorted (relative path, file hash) pairs of their
files. Strings (a Hugging Face id, a preset name) stand for themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..config.schema import RunConfig
from ..utils.hashcache import ABSENT, HashCache, digest

__all__ = ["ABSENT", "HashCache", "digest", "flatten", "section_values", "stat_fingerprint"]


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    """Nested mappings -> {"a.b.c": leaf}; lists stay leaves.

    >>> flatten({"lora": {"r": 8}, "method": "lora"}, "train")
    {'train.lora.r': 8, 'train.method': 'lora'}
    """
    if not isinstance(value, Mapping):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key in sorted(value):
        out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
    return out


def section_values(cfg: RunConfig, reads: Iterable[str], ignores: Iterable[str] = ()) -> dict[str, Any]:
    """The config values a stage reads, flattened: what a changed field is named by (``ignores``: paths left out)."""
    dumped = cfg.model_dump(mode="json")
    out: dict[str, Any] = {}
    for path in reads:
        node: Any = dumped
        for key in path.split("."):
            node = node[key]
        out.update(flatten(node, path))
    skip = tuple(ignores)
    return {k: v for k, v in out.items() if not any(k == p or k.startswith(f"{p}.") for p in skip)}


def stat_fingerprint(folder: Path) -> str:
    """Names, sizes and mtimes of a model folder: how a base model on disk is recognised without
    reading gigabytes of weights (a changed file changes its size or mtime)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return digest([[str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns] for p in files])
