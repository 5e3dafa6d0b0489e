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
from .store import FINGERPRINT_NAME, PredictionStore


def write_report(out_dir: str | Path) -> tuple[Path, Path]:
    """report.md and report.html of an evaluation folder (summary.json + predictions.jsonl)."""
    out_dir = Path(out_dir)
    summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    atomic_write_text(out_dir / "report.md", render_markdown("eval_report.md.j2", s=summary))
    return out_dir / "report.md", write_run_report(out_dir, out_dir / "report.html")


def _correct_by_id(folder: str | Path, ids: Collection[str] | None = None) -> dict[str, bool]:
    """Item id -> correct, for the multiple-choice items (of ``ids``, when given), read by ``PredictionStore``
    (which refuses a corrupt row or a second row of one id, naming the file and line).

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


def _side(folder: str | Path) -> dict[str, Any]:
    """What an evaluation folder records about its items: the benchmark and protocol its summary names,
    the item ids the summary covers, and the benchmark source's sha256 from fingerprint.json (None for
    what is not recorded). An unreadable summary or fingerprint is refused (ReportError naming the file)."""
    from ..report.collect import read_json

    folder = Path(folder)
    summary_path, fingerprint_path = folder / "summary.json", folder / FINGERPRINT_NAME
    summary = read_json(summary_path) if summary_path.is_file() else {}
    fingerprint = read_json(fingerprint_path) if fingerprint_path.is_file() else {}
    ids = summary.get("item_ids")
    return {"benchmark": summary.get("benchmark"), "protocol": summary.get("protocol"),
            "item_ids": set(map(str, ids)) if isinstance(ids, list) else None,
            "source_sha256": (fingerprint.get("benchmark") or {}).get("source_sha256")}


def _require_same_benchmark(dir_a: str | Path, dir_b: str | Path, side_a: dict[str, Any], side_b: dict[str, Any]) -> None:
    """Refuse two folders whose summaries name different benchmarks."""
    if side_a["benchmark"] and side_b["benchmark"] and side_a["benchmark"] != side_b["benchmark"]:
        raise ValueError(f"{dir_a} evaluated {side_a['benchmark']!r} and {dir_b} {side_b['benchmark']!r}: a paired "
                         "comparison needs the same benchmark's items")


def _warnings(side_a: dict[str, Any], side_b: dict[str, Any]) -> list[str]:
    """What a reader must see beside the paired numbers: two protocols, a protocol or benchmark not recorded, or two
    benchmark sources. The source digest in fingerprint.json is the benchmark file's under `medtune eval run` and the
    records' under a base-vs-tuned comparison (a --limit subset digests differently), so a difference is said, not
    refused: the pairing itself keeps to the ids both sides answered."""
    out = []
    sha_a, sha_b = side_a["source_sha256"], side_b["source_sha256"]
    if sha_a and sha_b and sha_a != sha_b:
        out.append(f"The two sides' {FINGERPRINT_NAME} record different benchmark sources ({sha_a[:12]}, {sha_b[:12]}): "
                   "another file under the same name, or another subset of it; only the item ids both answered are paired.")
    if side_a["protocol"] and side_b["protocol"] and side_a["protocol"] != side_b["protocol"]:
        out.append(f"The two sides were scored by different protocols ({side_a['protocol']}, {side_b['protocol']}): "
                   "the pairing compares two ways of answering the same items, not two models under one protocol.")
    for label, side in (("A", side_a), ("B", side_b)):
        if not side["protocol"]:
            out.append(f"{label}'s protocol is not recorded (its summary.json names none).")
    named = [(label, side["benchmark"]) for label, side in (("A", side_a), ("B", side_b)) if side["benchmark"]]
    if len(named) == 1:
        label, name = named[0]
        out.append(f"Only {label} names its benchmark ({name}); {'B' if label == 'A' else 'A'}'s benchmark is unknown.")
    return out


def _items_to_pair(ids: Collection[str] | None, side_a: dict[str, Any], side_b: dict[str, Any]) -> set[str] | None:
    """The items both summaries cover (their item_ids, where recorded), and of ``ids`` when given; None: every row."""
    scopes = [set(map(str, x)) for x in (ids, side_a["item_ids"], side_b["item_ids"]) if x is not None]
    return set.intersection(*scopes) if scopes else None


def compare_runs(dir_a: str | Path, dir_b: str | Path, out_dir: str | Path | None = None, *,
                 ids: Collection[str] | None = None) -> dict[str, Any]:
    """Paired comparison of two evaluation folders on their common items (McNemar, gain interval, flipped items).

    The items paired are those both summaries cover (a folder may also hold rows of other items,
    kept for resuming: an earlier, larger --limit), and of ``ids`` when given; ``items`` says how
    many. Folders of different benchmarks (by name, or by the benchmark source recorded in their
    fingerprints) are refused; ``warnings`` lists different or unrecorded protocols and an unknown
    benchmark. With ``out_dir``: compare.json, compare.md and compare.html (the report of both
    evaluations with the comparison and its flipped items in the item browser).
    """
    side_a, side_b = _side(dir_a), _side(dir_b)
    _require_same_benchmark(dir_a, dir_b, side_a, side_b)
    scope = _items_to_pair(ids, side_a, side_b)
    by_a, by_b = _correct_by_id(dir_a, scope), _correct_by_id(dir_b, scope)
    common = sorted(set(by_a) & set(by_b))
    if not common:
        raise ValueError(f"{dir_a} and {dir_b} share no item ids: a paired comparison needs the same items")
    ca, cb = [by_a[i] for i in common], [by_b[i] for i in common]
    same_benchmark = side_a["benchmark"] if side_a["benchmark"] == side_b["benchmark"] else None
    result = {
        "a": str(dir_a), "b": str(dir_b), "items": len(common),
        "benchmark": same_benchmark, "benchmark_a": side_a["benchmark"], "benchmark_b": side_b["benchmark"],
        "protocol_a": side_a["protocol"], "protocol_b": side_b["protocol"], "warnings": _warnings(side_a, side_b),
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
