"""Append-only per-item predictions, keyed by item id: what makes evaluations resumable.

Each finished chunk of items is appended as JSON lines and fsynced; an interrupted run
(Ctrl-C, OOM, preemption) leaves every completed item on disk, and the next run with
the same output folder skips them. A torn last line (a crash in the middle of a write)
is cut off before appending, never silently merged into the next row. Every reader of the
file (resume, summary, comparison, report) goes through :meth:`PredictionStore.numbered_rows`,
which refuses a corrupt row or a second row of one id, naming the file and line.

Rows are only ever resumed by the same evaluation: ``fingerprint.json`` beside the rows
(``eval/identity.py``: model files, prompt, protocol, decoding, benchmark) is written before
the first row, and :meth:`PredictionStore.claim` refuses a different fingerprint, naming every
differing field, unless the caller asks to start over (``overwrite``).

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

from ..utils.io import atomic_write_json

FINGERPRINT_NAME = "fingerprint.json"
# What an evaluation folder holds besides the rows; discarded together when starting over.
DERIVED = ("summary.json", "report.md", "report.html")


class EvalIdentityError(ValueError):
    """An output folder holds predictions of a different evaluation; the message names what differs."""


class PredictionStore:
    """predictions.jsonl of one evaluation (one benchmark, one protocol, one model)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.fingerprint_path = self.path.parent / FINGERPRINT_NAME

    def fingerprint(self) -> dict[str, Any] | None:
        if not self.fingerprint_path.is_file():
            return None
        return json.loads(self.fingerprint_path.read_text(encoding="utf-8"))

    def check(self, fingerprint: dict[str, Any]) -> None:
        """Raise EvalIdentityError if rows of another evaluation are here; writes nothing."""
        from .identity import fingerprint_diff

        rows = self.load()
        if not rows:
            return
        old = self.fingerprint()
        fix = "Evaluate into another folder (--out NEW), or pass --overwrite to discard these predictions and start over."
        if old is None:
            raise EvalIdentityError(f"{self.path.parent} holds {len(rows)} predictions without a {FINGERPRINT_NAME} "
                                    f"(an older medtune): nothing says which model made them. {fix}")
        diff = fingerprint_diff(old, fingerprint)
        if diff:
            was = (old.get("info") or {}).get("model_spec")
            lines = [f"  {name}: {_show(a)} -> {_show(b)}" for name, a, b in diff]
            raise EvalIdentityError(
                f"{self.path.parent} holds {len(rows)} predictions of a different evaluation"
                f"{f' (model {was})' if was else ''}; rows are never mixed. What differs (old -> new):\n"
                + "\n".join(lines) + f"\n{fix}")

    def claim(self, fingerprint: dict[str, Any], *, overwrite: bool = False) -> int:
        """Make this folder the store of ``fingerprint``; return how many rows are resumed.

        Same fingerprint: resume. No rows yet: (re)write the fingerprint. Otherwise refused,
        unless ``overwrite``: the old rows, summary and reports are deleted first, then the new
        fingerprint is written (a crash in between leaves no rows, which any evaluation may claim).
        """
        if overwrite:
            for name in (self.path.name, *DERIVED):
                (self.path.parent / name).unlink(missing_ok=True)
        else:
            self.check(fingerprint)
        resumed = len(self.load())
        if not resumed or self.fingerprint() is None:
            atomic_write_json(self.fingerprint_path, fingerprint)
        return resumed

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
        return [row for _, row in self.numbered_rows()]

    def numbered_rows(self) -> list[tuple[int, dict[str, Any]]]:
        """(line number, row) of the completed rows: the one reader of a predictions file.

        A torn final line (no newline: the crash interrupted this very write) is ignored when it
        does not parse. Any other line that is not UTF-8, not JSON, or not an object with an ``id``,
        and a second row of an id already read, raise DataError naming the file, line and field:
        evaluation, comparison and reports read rows by id, and one of two rows would silently win.
        """
        from ..data.importers.base import DataError

        if not self.path.is_file():
            return []
        rows: list[tuple[int, dict[str, Any]]] = []
        first_line: dict[str, int] = {}
        lines = self.path.read_bytes().split(b"\n")
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                if lineno == len(lines):  # torn tail: the crash interrupted this very write
                    break
                what = "not UTF-8" if isinstance(e, UnicodeDecodeError) else "not JSON"
                raise DataError(f"{self.path}:{lineno}: corrupt prediction row ({what}: {e}); "
                                "move the file away to start over") from None
            if not isinstance(row, dict) or "id" not in row:
                got = "an object without an id" if isinstance(row, dict) else f"a JSON {type(row).__name__}"
                raise DataError(f"{self.path}:{lineno}: corrupt prediction row (expected an object with an id, got "
                                f"{got}); move the file away to start over")
            item_id = str(row["id"])
            if item_id in first_line:
                raise DataError(f"{self.path}:{lineno}: field id: duplicate id {item_id!r} (first at line "
                                f"{first_line[item_id]}); each item has one prediction row: remove one of them, "
                                "or move the file away to start over")
            first_line[item_id] = lineno
            rows.append((lineno, row))
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


def _show(value: Any) -> str:
    """A fingerprint value for a one-line diff: digests shortened, long text cut."""
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    if isinstance(value, str) and value.startswith("sha256:"):
        return value[:19]
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    return text if len(text) <= 80 else text[:77] + "..."
