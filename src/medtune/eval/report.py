"""Evaluation reports: Markdown for terminals and PRs, the self-contained HTML report, paired comparison.

``report.md`` and ``compare.md`` come from Markdown templates; ``report.html`` and
``compare.html`` are the run report (``medtune.report``) of the same folder: the same
numbers as tables and plots, plus the item browser. Every report states the protocol next
to its numbers and carries medtune.DISCLAIMER.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from ..report import render_markdown, write_run_report
from ..utils.io import atomic_write_json, atomic_write_text
from .metrics import accuracy_summary, mcnemar, paired_difference, paired_flips
from .store import PredictionStore


def write_report(out_dir: str | Path) -> tuple[Path, Path]:
    """report.md and report.html of an evaluation folder (summary.json + predictions.jsonl)."""
    out_dir = Path(out_dir)
    summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    atomic_write_text(out_dir / "report.md", render_markdown("eval_report.md.j2", s=summary))
    return out_dir / "report.md", write_run_report(out_dir, out_dir / "report.html")


def _correct_by_id(folder: str | Path, ids: Collection[str] | None = None) -> dict[str, bool]:
    """Item id -> correct, for the multiple-choice items (of ``ids``, when given).

    Option-permutation copies are not paired, and open-ended items (status "open") are not
    either: they have a ROUGE-L score, not a right or wrong answer (as in the summary's accuracy).
    """
    path = Path(folder) / "predictions.jsonl"
    rows = [(n, r) for n, r in PredictionStore(path).numbered_rows() if ids is None or str(r["id"]) in ids]
    mcq = [(n, r) for n, r in rows if not (r.get("group") or {}).get("perm_of") and r.get("status") != "open"]
    if rows and not mcq:
        raise ValueError(f"{path}: no multiple-choice predictions to pair, only open-ended ones (scored by ROUGE-L, "
                         "not right or wrong); a paired comparison needs multiple-choice items")
    for n, r in mcq:
        if not isinstance(r.get("correct"), bool):
            got = "missing" if "correct" not in r else f"{r['correct']!r}, not true or false"
            raise ValueError(f"{path}:{n}: field correct: {got}; a multiple-choice prediction row records whether "
                             "it was right (true/false)")
    return {str(r["id"]): r["correct"] for _, r in mcq}


def _side(folder: str | Path) -> dict[str, str | None]:
    """The benchmark and protocol an evaluation folder's summary names (None for a folder without one)."""
    from ..report.collect import ReportError, read_json

    path = Path(folder) / "summary.json"
    try:
        summary = read_json(path) if path.is_file() else {}
    except ReportError:  # an unreadable summary names nothing: the pairing itself reads predictions.jsonl
        summary = {}
    return {"benchmark": summary.get("benchmark"), "protocol": summary.get("protocol")}


def compare_runs(dir_a: str | Path, dir_b: str | Path, out_dir: str | Path | None = None, *,
                 ids: Collection[str] | None = None) -> dict[str, Any]:
    """Paired comparison of two evaluation folders on their common items (McNemar, gain interval, flipped items).

    ``ids`` restricts it to those items (the records an evaluation was asked for: a folder
    may also hold rows of other items kept for resuming). With ``out_dir``: compare.json,
    compare.md and compare.html (the report of both evaluations with the comparison and its
    flipped items in the item browser).
    """
    ids = set(ids) if ids is not None else None
    side_a, side_b = _side(dir_a), _side(dir_b)
    if side_a["benchmark"] and side_b["benchmark"] and side_a["benchmark"] != side_b["benchmark"]:
        raise ValueError(f"{dir_a} evaluated {side_a['benchmark']!r} and {dir_b} {side_b['benchmark']!r}: a paired "
                         "comparison needs the same benchmark's items")
    by_a, by_b = _correct_by_id(dir_a, ids), _correct_by_id(dir_b, ids)
    common = sorted(set(by_a) & set(by_b))
    if not common:
        raise ValueError(f"{dir_a} and {dir_b} share no item ids: a paired comparison needs the same items")
    ca, cb = [by_a[i] for i in common], [by_b[i] for i in common]
    result = {
        "a": str(dir_a), "b": str(dir_b), "items": len(common),
        "benchmark": side_a["benchmark"] or side_b["benchmark"], "protocol_a": side_a["protocol"],
        "protocol_b": side_b["protocol"],
        "accuracy_a": accuracy_summary(ca), "accuracy_b": accuracy_summary(cb),
        "difference_b_minus_a": paired_difference(ca, cb), "mcnemar": mcnemar(ca, cb),
        "flips": paired_flips(by_a, by_b),
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        atomic_write_json(out_dir / "compare.json", result)
        atomic_write_text(out_dir / "compare.md", render_markdown("compare.md.j2", r=result))
        write_run_report(out_dir, out_dir / "compare.html")
    return result
