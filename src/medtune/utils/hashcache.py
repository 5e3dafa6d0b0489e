"""sha256 of files, cached by (resolved path, size, mtime) in one JSON file: the one file-hash cache.

Used by `medtune run` (each run's RUN/stages/fingerprints.json: are a stage's inputs and outputs
unchanged?) and by evaluation identity (``$MEDTUNE_HOME/file-hashes.json``: which weights is this
model?). A hit needs the same size and mtime, as make and git's index decide, so a 16 GB model or
an unchanged data set is read once, not at every run. Folders hash the sorted (relative path,
file hash) pairs of their files; strings (a Hugging Face id, a preset name) stand for themselves.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "w.bin").write_bytes(b"weights")
>>> cache = HashCache(d / "hashes.json")
>>> cache.of(d / "w.bin") == cache.of(d / "w.bin") == sha256_file(d / "w.bin")
True
>>> cache.of("hf:owner/name"), cache.of(d / "missing")
('id:hf:owner/name', 'absent')
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .io import atomic_write_json, sha256_file
from .paths import medtune_home

ABSENT = "absent"


def digest(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj``.

    >>> digest({"b": 1, "a": [1, 2]}) == digest({"a": [1, 2], "b": 1})
    True
    """
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class HashCache:
    """sha256 of files remembered by resolved path, size and mtime in one JSON file (``save`` writes it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.entries: dict[str, list] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def file(self, path: str | Path) -> str:
        path = Path(path).resolve()
        st = path.stat()
        key, stamp = str(path), [st.st_size, st.st_mtime_ns]
        hit = self.entries.get(key)
        if hit and hit[:2] == stamp:
            return hit[2]
        sha = sha256_file(path)
        self.entries[key] = [*stamp, sha]
        self.dirty = True
        return sha

    def tree(self, folder: Path) -> str:
        """Every file below ``folder`` (hidden ones excluded), by relative path."""
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
        """Write the cache (when it changed), forgetting files that are gone (test folders, deleted runs).

        A cache that cannot be written (a read-only home) is not an error: hashing works, uncached.
        """
        if not self.dirty:
            return
        self.entries = {k: v for k, v in self.entries.items() if Path(k).exists()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, self.entries, indent=None)
        except OSError:
            return
        self.dirty = False


def cached_sha256(path: str | Path) -> str:
    """sha256 of one file through the user-wide cache ``$MEDTUNE_HOME/file-hashes.json``."""
    cache = HashCache(medtune_home() / "file-hashes.json")
    sha = cache.file(path)
    cache.save()
    return sha
