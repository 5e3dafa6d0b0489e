"""Score model outputs produced elsewhere (vLLM, another harness, a colleague) with the same extractor.

``OUTPUTS`` holds one JSON object per line with ``id`` and ``output`` (raw model text);
``ITEMS`` is any benchmark file the importers read, whose ids are the ones the data
importers assign. Nothing here imports torch or transformers: scoring 10k outputs
takes seconds on a laptop.

Bad output rows (not JSON, no ``id``/``output``, an id not among the items, a
duplicate id) never stop the run silently and are never dropped silently: each goes
to a quarantine file with file, line, field and reason, and the count is reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..data.records import Record
from ..utils.io import atomic_write_jsonl
from .metrics import accuracy_summary
from .runners import score_output


class ScoreError(ValueError):
    """Unusable inputs to `medtune eval score` (message names the file, line and field)."""


def _load_items(items_path: Path, fmt: str) -> dict[str, Record]:
    """Item id -> record; two items with one id are refused, since outputs name their item by id
    (keeping one would drop the other's output as a duplicate, and score it against the wrong item)."""
    from ..data.importers import iter_records

    items: dict[str, Record] = {}
    for r in iter_records(items_path, fmt):
        if r.id in items:
            raise ScoreError(f"{items_path}: item id {r.id!r} occurs twice; every item needs its own id for its "
                             "output to be matched to it")
        items[r.id] = r
    if not items:
        raise ScoreError(f"{items_path}: the importer ({fmt}) produced no items")
    return items


def _read_outputs(path: Path, items: dict[str, Record]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """id -> output text, plus quarantined rows (each with file, line, field and reason)."""
    good: dict[str, str] = {}
    bad: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            problem = None
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                row, problem = None, ("(line)", f"not valid JSON: {e.msg}")
            if problem is None and not isinstance(row, dict):
                problem = ("(line)", "expected a JSON object")
            elif problem is None and not isinstance(row.get("id"), (str, int)):
                problem = ("id", "missing or not a string")
            elif problem is None and not isinstance(row.get("output"), str):
                problem = ("output", "missing or not a string")
            elif problem is None and str(row["id"]) not in items:
                problem = ("id", f"{row['id']!r} is not an item id of the items file")
            elif problem is None and str(row["id"]) in good:
                problem = ("id", f"duplicate id {row['id']!r} (the first occurrence is scored)")
            if problem:
                bad.append({"file": str(path), "line": lineno, "field": problem[0], "reason": problem[1], "raw": line.rstrip("\n")[:2000]})
            else:
                good[str(row["id"])] = row["output"]
    return good, bad


def score_outputs(
    outputs_path: str | Path,
    items_path: str | Path,
    *,
    fmt: str = "auto",
    out: str | Path | None = None,
    reasoning_format: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Extract and score every output; returns the summary and writes per-item rows to ``out``."""
    outputs_path, items_path = Path(outputs_path), Path(items_path)
    for p in (outputs_path, items_path):
        if not p.is_file():
            raise ScoreError(f"{p}: file not found")
    items = _load_items(items_path, fmt)
    outputs, quarantined = _read_outputs(outputs_path, items)
    if not outputs:
        first = quarantined[0] if quarantined else None
        hint = f"; first problem: line {first['line']} field {first['field']}: {first['reason']}" if first else ""
        raise ScoreError(f"{outputs_path}: no usable output rows{hint}")
    rows = []
    for item_id, text in outputs.items():
        record = items[item_id]
        if not record.options:
            quarantined.append({"file": str(outputs_path), "line": None, "field": "id", "reason": f"item {item_id} has no options (not multiple choice)", "raw": ""})
            continue
        rows.append(score_output(record, [text], reasoning_format))
    summary = accuracy_summary([r["correct"] for r in rows], sum(1 for r in rows if r["status"] != "ok"))
    summary["missing"] = len(items) - len(outputs)
    summary["quarantined"] = len(quarantined)
    summary["by_status"] = {s: sum(1 for r in rows if r["status"] == s) for s in ("ok", "unparseable", "conflicting")}
    if out is not None:
        atomic_write_jsonl(out, rows)
    if quarantined:
        qpath = Path(out).with_suffix(".quarantine.jsonl") if out else outputs_path.with_suffix(".quarantine.jsonl")
        atomic_write_jsonl(qpath, quarantined)
        summary["quarantine_file"] = str(qpath)
        log(f"{len(quarantined)} output row(s) quarantined with reasons in {qpath}")
    return summary
