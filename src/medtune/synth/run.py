"""`run_synth`: write records, cases, a dataset card and manifest.json for one seed; `preview_text` for reviewers.

Files are streamed into temp files and renamed into place only when complete (utils.io), so a
crash or Ctrl-C never leaves half a dataset that looks whole. Memory stays flat: only counters
are kept across cases.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined

from .. import DISCLAIMER, __version__
from ..utils.io import atomic_open, atomic_write_json, atomic_write_text
from ..utils.paths import resource_path
from .engine import iter_cases_and_records
from .kb import load_kb
from .tasks import TASKS

RECORDS, CASES, CARD, STATS = "records.jsonl", "cases.jsonl", "dataset_card.md", "stats.json"


def _age_band(age: float) -> str:
    if age < 1:
        return "0 infant"
    if age < 12:
        return "1 child"
    if age < 18:
        return "2 adolescent"
    if age < 65:
        return "3 adult 18-64"
    return "4 older adult 65+"


class _Stats:
    """Counters for the dataset card (nothing per record is kept): cases as cases.jsonl holds them, records as
    records.jsonl does (with a teacher, only the accepted ones)."""

    def __init__(self) -> None:
        self.by_specialty: dict[str, Counter] = defaultdict(Counter)
        self.by_task: Counter = Counter()
        self.sex: Counter = Counter()
        self.age_bands: Counter = Counter()
        self.letters: Counter = Counter()
        self.cases = self.records = self.atypical = self.variant_records = 0
        self.groups: set[str] = set()

    def add_case(self, case: dict[str, Any]) -> None:
        self.cases += 1
        self.atypical += bool(case.get("atypical_presentation"))
        self.sex[case["patient_profile"]["sex"]] += 1
        self.age_bands[_age_band(case["patient_profile"]["age"])] += 1

    def add_records(self, records: Iterable) -> None:
        for r in records:
            self.records += 1
            task = r.metadata.get("task_type", r.task)  # treatment and mechanism records have task management / mcq
            self.by_task[task] += 1
            self.by_specialty[r.metadata["specialty"]][task] += 1
            if r.answer.letter:
                self.letters[r.answer.letter] += 1
            if r.metadata.get("variant") not in (None, "original"):
                self.variant_records += 1
                self.groups.add(r.metadata["group_id"])

    def summary(self) -> dict[str, Any]:
        return {"cases": self.cases, "records": self.records, "by_task": dict(self.by_task),
                "by_specialty": {k: dict(v) for k, v in sorted(self.by_specialty.items())},
                "sex": dict(self.sex), "age_bands": dict(self.age_bands), "letters": dict(self.letters),
                "atypical": self.atypical, "variant_records": self.variant_records, "groups": len(self.groups)}


def _kb_dirs(kb_dir: str | Path | list[str | Path] | None) -> list[str | Path]:
    if kb_dir is None:
        return []
    return list(kb_dir) if isinstance(kb_dir, list | tuple) else [kb_dir]


def render_card(summary: dict[str, Any], **info: Any) -> str:
    """The dataset card (Markdown) from run counts and generation settings."""
    env = Environment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    template = env.from_string(resource_path("synth", "dataset_card.md.j2").read_text(encoding="utf-8"))
    return template.render(disclaimer=DISCLAIMER, version=__version__, **summary, **info)


def run_synth(out_dir: str | Path, n: int, seed: int, tasks: list[str] | None = None,
              specialties: list[str] | None = None, kb_dir: str | Path | list[str | Path] | None = None,
              teacher: Any | None = None, bias_variants: bool = False, compact: bool = False) -> dict[str, Any]:
    """Generate ``n`` cases into ``out_dir`` (records.jsonl, cases.jsonl, dataset_card.md, stats.json, manifest.json).

    ``teacher`` is an optional :class:`medtune.synth.teacher.TeacherConfig`; when given, the
    records' reasoning is rewritten by the endpoint, verified against the KB label, and written
    to records.jsonl, with rejected items in teacher_rejects.jsonl; the record counts (returned,
    stats.json, the card, the manifest) are then those of records.jsonl, and ``teacher`` says how
    many were accepted, rejected and failed. ``compact`` writes the short
    form of each case (engine.iter_cases_and_records). Returns the counts.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dirs = _kb_dirs(kb_dir)
    task_list = list(tasks or TASKS)
    stats = _Stats()
    records_path = out / (RECORDS if teacher is None else "records.engine.jsonl")
    with atomic_open(records_path) as rf, atomic_open(out / CASES) as cf:
        for case, records in iter_cases_and_records(n, seed, specialties=specialties, tasks=task_list, kb_dirs=dirs,
                                                    bias_variants=bias_variants, compact=compact):
            stats.add_case(case)
            if teacher is None:  # with a teacher, records are counted as written: after verification (below)
                stats.add_records(records)
            cf.write(json.dumps(case, ensure_ascii=False) + "\n")
            for r in records:
                rf.write(r.model_dump_json(exclude_none=True) + "\n")
    teacher_info = None
    if teacher is not None:
        from ..data.io import read_records
        from .teacher import run_teacher

        teacher_info = run_teacher(records_path, out / RECORDS, teacher)
        stats.add_records(read_records(out / RECORDS))  # what training reads: the accepted records only
    summary = stats.summary()
    if teacher_info is not None:
        summary["teacher"] = teacher_info
    kb = load_kb(dirs)
    info = {"seed": seed, "tasks": task_list, "kb_version": kb.version, "n_conditions": len(kb.conditions),
            "n_specialties": len(kb.specialties()), "kb_dirs": [str(d) for d in dirs], "bias_variants": bias_variants,
            "teacher": teacher_info}
    atomic_write_text(out / CARD, render_card({k: v for k, v in summary.items() if k != "teacher"}, **info))
    result = {**summary, **{k: v for k, v in info.items() if k != "teacher"},
              "paths": {"records": str(out / RECORDS), "cases": str(out / CASES), "card": str(out / CARD)}}
    atomic_write_json(out / STATS, result)
    _write_manifest(out, summary, info)
    return result


def _write_manifest(out: Path, summary: dict[str, Any], info: dict[str, Any]) -> None:
    """manifest.json like the data commands': ``records`` names the file training reads (cases.jsonl is not records)."""
    from ..data.manifest import build_manifest, file_entry, write_manifest

    outputs = [file_entry(out / RECORDS, records=summary["records"]), file_entry(out / CASES, records=summary["cases"])]
    options = {k: v for k, v in info.items() if k != "teacher"} | {"teacher": bool(info.get("teacher"))}
    write_manifest(out, build_manifest("synth", [], outputs, options, summary, records=RECORDS))


def preview_text(n: int = 20, seed: int = 0, specialties: list[str] | None = None,
                 kb_dir: str | Path | list[str | Path] | None = None, compact: bool = False) -> str:
    """``n`` cases as a reviewer reads them: vignette, answer, reasoning, next step (Markdown); ``compact``: their
    short form, as ``synth.compact`` writes them."""
    parts = [f"> {DISCLAIMER}\n"]
    for case, records in iter_cases_and_records(n, seed, specialties=specialties, tasks=["diagnosis"],
                                                kb_dirs=_kb_dirs(kb_dir), compact=compact):
        rec = records[0]
        atypical = " · atypical presentation" if case["atypical_presentation"] else ""
        parts.append(
            f"### {case['case_id']} · {case['specialty']} · {case['final_diagnosis']}{atypical}\n\n"
            f"{case['vignette']}\n\n**Q:** What is the most likely diagnosis?\n\n"
            f"**Reasoning:**\n" + "\n".join(f"- {s}" for s in case["reasoning_steps"]) + "\n\n"
            f"**Answer:** {rec.response}\n"
        )
    parts.append(f"> {DISCLAIMER}\n")
    return "\n".join(parts)


def run_synth_section(section: Any, out_dir: str | Path) -> dict[str, Any]:
    """Run the synth stage from a RunConfig ``synth`` section (what `medtune run` and the CLI call)."""
    from .teacher import teacher_from_section

    return run_synth(out_dir, section.n, section.seed, tasks=section.tasks, specialties=section.specialties or None,
                     kb_dir=section.kb_dir, teacher=teacher_from_section(section), bias_variants=section.bias_variants,
                     compact=section.compact)
