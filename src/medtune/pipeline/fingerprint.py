"""What a stage depends on, as hashes: its config section (flattened values) and its input files.

File contents are hashed with sha256 and the hash is cached by (size, mtime), as make and git's
index do, so a re-run of an unchanged pipeline reads no large file again. Folders hash the
sorted (relative path, file hash) pairs of their files. Strings (a Hugging Face id, a preset
name) stand for themselves.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..config.schema import RunConfig
from ..utils.io import atomic_write_json, sha256_file

ABSENT = "absent"


def digest(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj``.

    >>> digest({"b": 1, "a": [1, 2]}) == digest({"a": [1, 2], "b": 1})
    True
    """
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


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


def section_values(cfg: RunConfig, reads: Iterable[str]) -> dict[str, Any]:
    """The config values a stage reads, flattened: what a changed field is named by."""
    dumped = cfg.model_dump(mode="json")
    out: dict[str, Any] = {}
    for path in reads:
        node: Any = dumped
        for key in path.split("."):
            node = node[key]
        out.update(flatten(node, path))
    return out


class HashCache:
    """sha256 of files, remembered by path, size and mtime in one JSON file (RUN/stages/fingerprints.json)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.entries: dict[str, list] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def file(self, path: Path) -> str:
        st = path.stat()
        key, stamp = str(path.resolve()), [st.st_size, st.st_mtime_ns]
        hit = self.entries.get(key)
        if hit and hit[:2] == stamp:
            return hit[2]
        sha = sha256_file(path)
        self.entries[key] = [*stamp, sha]
        self.dirty = True
        return sha

    def tree(self, folder: Path) -> str:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        return digest([[str(p.relative_to(folder)), self.file(p)] for p in files])

    def of(self, target: Path | str) -> str:
        """The fingerprint of a file, a folder, or an identifier string."""
        if isinstance(target, str):
            return f"id:{target}"
        if target.is_file():
            return self.file(target)
        if target.is_dir():
            return self.tree(target)
        return ABSENT

    def save(self) -> None:
        if self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, self.entries, indent=None)
            self.dirty = False


def stat_fingerprint(folder: Path) -> str:
    """Names, sizes and mtimes of a model folder: how a base model on disk is recognised without
    reading gigabytes of weights (a changed file changes its size or mtime)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return digest([[str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns] for p in files])
