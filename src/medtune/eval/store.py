"""Append-only per-item predictions, keyed by item id: what makes evaluations resumable.

Each finished chunk of items is appended as JSON lines and fsynced; an interrupted run
(Ctrl-C, OOM, preemption) leaves every completed item on disk, and the next run with
the same output folder skips them. A torn last line (a crash in the middle of a write)
is cut off before appending, never silently merged into the next row.

>>> import tempfile, pathlib
>>> store = PredictionStore(pathlib.Path(tempfile.mkdtemp()) / "predictions.jsonl")
>>> store.append([{"id": "q1", "correct": True}])
>>> store.done_ids()
{'q1'}
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class PredictionStore:
    """predictions.jsonl of one evaluation (one benchmark, one protocol, one model)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _repair_torn_tail(self) -> None:
        """Truncate a last line without its newline (a write interrupted by a crash)."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            data = self.path.read_bytes()
            f.truncate(data.rfind(b"\n") + 1)

    def load(self) -> list[dict[str, Any]]:
        """Completed rows, in file order; a torn final line is ignored (and cut on the next append)."""
        if not self.path.is_file():
            return []
        rows = []
        lines = self.path.read_text(encoding="utf-8").split("\n")
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                if lineno == len(lines):  # torn tail: the crash interrupted this very write
                    break
                raise ValueError(f"{self.path}:{lineno}: corrupt prediction row ({e}); move the file away to start over") from e
        return rows

    def done_ids(self) -> set[str]:
        return {r["id"] for r in self.load()}

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()
        with open(self.path, "a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
