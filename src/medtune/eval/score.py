"""Score model outputs produced elsewhere (vLLM, another harness, a colleague) with the same extractor.

``OUTPUTS`` holds one JSON object per line with ``id`` and ``output`` (raw model text);
``ITEMS`` is any benchmark file the importers read, whose ids are the ones the data
importers assign. Nothing here imports torch or transformers: scoring 10k outputs
takes seconds on a laptop.

Bad output rows (not UTF-8, not JSON, no ``id``/``output``, an id not among the items, a
duplicate id) never stop the run silently and are never dropped silently: each goes
to a quarantine file with file, line, field and reason, and the count is reported.
A bad row of the items file is refused instead (file, line, field): the items define what
is scored. Neither ``--out`` nor the quarantine file beside it may be one of the inputs.
"""

from __future__ import annotations

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
    (keeping one would drop the other's output as a duplicate, and score it against the wrong item).

    A row the importer rejects is refused too, naming the items file, its line and field: the
    items define what is scored, and a benchmark scored silently on fewer items (with the
    outputs of the missing ones blamed as unknown ids) is a wrong number.
    """
    from ..data.importers import Quarantine, iter_records

    refuse = Quarantine(refuse="the items file defines what is scored: fix or remove that item, then score again")
    items: dict[str, Record] = {}
    for r in iter_records(items_path, fmt, quarantine=refuse):
        if r.id in items:
            raise ScoreError(f"{items_path}: item id {r.id!r} occurs twice; every item needs its own id for its "
                             "output to be matched to it")
        items[r.id] = r
    if not items:
        raise ScoreError(f"{items_path}: the importer ({fmt}) produced no items")
    return items


def _read_outputs(path: Path, items: dict[str, Record]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """id -> output text, plus quarantined rows (each with file, line, field and reason).

    Lines are read by the importers' JSONL reader: a line that is not UTF-8, not JSON, not an
    object or over-long is quarantined like any other bad row.
    """
    from ..data.importers.base import DEFAULT_MAX_LINE_BYTES, _iter_jsonl

    good: dict[str, str] = {}
    bad: list[dict[str, Any]] = []
    for raw in _iter_jsonl(path, DEFAULT_MAX_LINE_BYTES):
        row, problem = raw.data, None
        if raw.error is not None:
            problem = ("(line)", raw.error.reason)
        elif not isinstance(row.get("id"), (str, int)):
            problem = ("id", "missing or not a string")
        elif not isinstance(row.get("output"), str):
            problem = ("output", "missing or not a string")
        elif str(row["id"]) not in items:
            problem = ("id", f"{row['id']!r} is not an item id of the items file")
        elif str(row["id"]) in good:
            problem = ("id", f"duplicate id {row['id']!r} (the first occurrence is scored)")
        if problem:
            bad.append({"file": str(path), "line": raw.loc, "field": problem[0], "reason": problem[1],
                        "raw": raw.raw.rstrip("\n")[:2000]})
        else:
            good[str(row["id"])] = row["output"]
    return good, bad


def _quarantine_path(outputs_path: Path, out: Path | None) -> Path:
    return out.with_suffix(".quarantine.jsonl") if out is not None else outputs_path.with_suffix(".quarantine.jsonl")


def _check_outputs_paths(outputs_path: Path, items_path: Path, out: Path | None) -> None:
    """Refuse an output (the per-item rows, or the quarantine file beside them) that is one of the inputs."""
    from ..utils.paths import overwritten_input

    inputs = {outputs_path: "the outputs file", items_path: "the items file"}
    if out is not None and (hit := overwritten_input(out, list(inputs))):
        raise ScoreError(f"--out {out} is {inputs[hit]} ({hit}); write the per-item rows elsewhere")
    qpath = _quarantine_path(outputs_path, out)
    if (hit := overwritten_input(qpath, list(inputs))):
        where = f"--out {out}" if out is not None else f"outputs file {outputs_path}"
        raise ScoreError(f"the quarantine file of {where} would be {qpath}, which is {inputs[hit]}; "
                         f"{'choose another --out' if out is not None else 'rename the outputs file or give --out'}")


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
    out = Path(out) if out is not None else None
    for p in (outputs_path, items_path):
        if not p.is_file():
            raise ScoreError(f"{p}: file not found")
    _check_outputs_paths(outputs_path, items_path, out)
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
        qpath = _quarantine_path(outputs_path, out)
        atomic_write_jsonl(qpath, quarantined)
        summary["quarantine_file"] = str(qpath)
        log(f"{len(quarantined)} output row(s) quarantined with reasons in {qpath}")
    return summary
