"""The deterministic case engine: walk the knowledge base, stream cases and records.

Case ``i`` of seed ``s`` draws everything from its own ``random.Random("medtune-synth:s:i")``
(string seeds hash with SHA-512, stable across machines and Python runs), so output is
byte-identical for a seed, any case can be regenerated alone, and memory stays flat:
nothing is kept between cases.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config.load import ConfigError, ConfigProblem
from ..data.records import Record
from .bias import probe_variants
from .kb import KnowledgeBase, load_kb
from .kb_rules import names_diagnosis
from .kb_schema import Condition
from .pools import hallmark, history_pool, mechanism_pool, negative_pool, treatment_pool
from .prose import load_phrasing, sample_style
from .sampling import Prepared, demographic_gate, sample_facts
from .tasks import TASKS, case_records
from .writeup import case_dict, reasoning_steps, vignette

_GENERIC = {"blood", "serum", "plasma", "level", "count", "test", "total", "urine", "high", "sensitivity", "arterial"}


def _tokens(name: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]{3,}", name.lower()) if w not in _GENERIC}


def without_leaks(cond: Condition) -> Condition:
    """A copy of ``cond`` without the items whose text names the diagnosis.

    A result such as "Westley croup score" or "PCR: varicella-zoster virus DNA detected", or a
    history of "previous episode of croup", would hand the answer to the reader; the stem of a
    question must never name its answer. Lists that would become empty are kept whole.
    """
    names = names_diagnosis(cond)

    def keep(items: list, text) -> list:
        kept = [it for it in items if not names(text(it))]
        return kept or list(items)

    p, e = cond.presentation, cond.epidemiology
    return cond.model_copy(update={
        "presentation": p.model_copy(update={"symptoms": keep(p.symptoms, lambda x: x.name),
                                              "chief_complaints": keep(p.chief_complaints, str)}),
        "epidemiology": e.model_copy(update={"risk_factors": [r for r in e.risk_factors if not names(r.name)]}),
        "exam_findings": keep(cond.exam_findings, lambda x: x.name),
        "labs": keep(cond.labs, lambda x: x.name),
        "imaging": [i for i in cond.imaging if not names(f"{i.study} {i.finding}")],
    })


def prepare(kb: KnowledgeBase) -> dict[str, Prepared]:
    """Per condition: resolved differentials, MCQ distractor pool, rule-out labs, overlap symptoms.

    Rule-out labs are the *discriminating* labs of KB differentials, shown normal (a chest-pain
    workup includes a D-dimer and a lipase): the case then lists tests a clinician would order,
    not only the answer's own markers, so lab names alone do not give the diagnosis away. A lab
    sharing a word with one of the condition's own labs (troponin I vs troponin T) is skipped so
    a case never contradicts itself.
    """
    by_specialty: dict[str, list[str]] = {}
    for cid in sorted(kb.conditions):
        by_specialty.setdefault(kb.conditions[cid].specialty, []).append(cid)
    out: dict[str, Prepared] = {}
    for cid in sorted(kb.conditions):
        cond = without_leaks(kb.conditions[cid])
        taken = {cond.name.lower(), *(a.lower() for a in cond.aliases)}
        diffs, pool = [], []
        for d in cond.differentials:
            name = kb.differential_name(d)
            diffs.append({"name": name, "condition_id": d.condition, "discriminator": d.discriminator})
            if name.lower() not in taken:
                pool.append(name)
                taken.add(name.lower())
        for other in by_specialty[cond.specialty]:
            name = kb.conditions[other].name
            if other != cid and name.lower() not in taken:
                pool.append(name)
                taken.add(name.lower())
        own_lab_words = set().union(*(_tokens(lab.name) for lab in cond.labs)) if cond.labs else set()
        own_symptoms = {s.name.lower() for s in cond.presentation.symptoms}
        rule_out, overlap, complaints, seen = [], [], [], set()
        for d in cond.differentials:
            other = kb.conditions.get(d.condition or "")
            if other is None:
                continue
            for lab in other.labs:
                if lab.discriminating and lab.name not in seen and not (_tokens(lab.name) & own_lab_words):
                    rule_out.append((other, lab))
                    seen.add(lab.name)
            overlap += [(other, s.name) for s in other.presentation.symptoms
                        if not s.discriminating and s.name.lower() not in own_symptoms]
            complaints += [(other, c) for c in other.presentation.chief_complaints]
        texts = [*(x.name for x in cond.presentation.symptoms), *cond.presentation.chief_complaints,
                 *(x.name for x in cond.epidemiology.risk_factors), *(x.name for x in cond.exam_findings),
                 *(f"{x.study} {x.finding}" for x in cond.imaging)]
        out[cid] = Prepared(cond, diffs, pool, rule_out, overlap, complaints, gated=any(map(demographic_gate, texts)))
        _add_wording_pools(out[cid], kb)
    return out


def _add_wording_pools(prep: Prepared, kb: KnowledgeBase) -> None:
    """Pertinent negatives, incidental history and the option pools of the richer tasks (synth.pools)."""
    ph, cond = load_phrasing(), prep.cond
    prep.negatives = negative_pool(cond, ph.negatives["symptoms"], ph.negatives["exams"])
    prep.history = history_pool(kb, cond, ph.history)
    prep.treatments = treatment_pool(kb, cond) if cond.management.treatment else []
    prep.mechanisms = mechanism_pool(kb, cond) if cond.mechanism else []
    prep.option_reasons = {name: reason for name in prep.distractors if (reason := hallmark(kb, cond, name))}


def _select(kb: KnowledgeBase, specialties: list[str] | None) -> list[str]:
    if not specialties:
        return sorted(kb.conditions)
    unknown = sorted(set(specialties) - set(kb.specialties()))
    if unknown:
        raise ConfigError([ConfigProblem("synth.specialties", f"unknown specialties {unknown}",
                                         f"use some of: {', '.join(kb.specialties())}")])
    return sorted(cid for cid, c in kb.conditions.items() if c.specialty in specialties)


def _check_tasks(tasks: list[str] | None) -> tuple[str, ...]:
    tasks = list(tasks or TASKS)
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise ConfigError([ConfigProblem("synth.tasks", f"unknown tasks {bad}", f"use some of: {', '.join(TASKS)}")])
    return tuple(tasks)


def _meta(f: dict[str, Any], prep: Prepared, case_id: str, seed: int, kb_version: str) -> dict[str, Any]:
    c = prep.cond
    return {"case_id": case_id, "condition_id": c.id, "condition": c.name, "specialty": c.specialty,
            "kb_version": kb_version, "seed": seed,
            "demographics": {"age": f["age"], "sex": f["sex"], "ethnicity": f["ethnicity"], "pregnant": f["pregnant"]}}


def iter_cases_and_records(n: int, seed: int, *, specialties: list[str] | None = None, tasks: list[str] | None = None,
                           kb_dirs: list[str | Path] | None = None, bias_variants: bool = False,
                           include_shipped: bool = True, compact: bool = False) -> Iterator[tuple[dict[str, Any], list[Record]]]:
    """Stream ``(case, records)`` pairs: the one loop behind generate_cases and generate_records.

    ``compact`` writes the short form of each case (prose.sample_style): same facts and draws,
    about a third fewer tokens per record, for CPU training budgets.
    """
    task_list = _check_tasks(tasks)
    kb = load_kb(kb_dirs, include_shipped=include_shipped)
    preps = prepare(kb)
    ids = _select(kb, specialties)
    for i in range(n):
        rng = random.Random(f"medtune-synth:{seed}:{i}")
        prep = preps[rng.choice(ids)]
        f = sample_facts(prep, rng)
        # Wording has its own stream: facts (and records built from them alone) never depend on it.
        f["style"] = sample_style(prep, f, random.Random(f"medtune-synth-text:{seed}:{i}"), compact=compact)
        onset = prep.cond.presentation.onset
        case_id = f"syn-{seed}-{i:06d}"
        meta = _meta(f, prep, case_id, seed, kb.version)
        steps, stem = reasoning_steps(f, prep), vignette(f, onset)
        case = case_dict(f, prep, meta, steps, stem)
        variants = probe_variants(f, prep) if bias_variants else []
        if variants:
            meta = {**meta, "group_id": case_id, "variant": "original"}
        records = case_records(f, prep, meta, steps, stem, task_list)
        for name, vf in variants:
            vmeta = {**_meta(vf, prep, case_id, seed, kb.version), "group_id": case_id, "variant": name}
            records += case_records(vf, prep, vmeta, reasoning_steps(vf, prep), vignette(vf, onset), task_list, f"-{name}")
        yield case, records


def generate_cases(n: int, seed: int, *, specialties: list[str] | None = None, kb_dirs: list[str | Path] | None = None,
                   include_shipped: bool = True, compact: bool = False) -> Iterator[dict[str, Any]]:
    """Stream ``n`` cases in the seed guide's schema (patient_profile ... patient_explanation)."""
    for case, _ in iter_cases_and_records(n, seed, specialties=specialties, tasks=["diagnosis"], kb_dirs=kb_dirs,
                                          include_shipped=include_shipped, compact=compact):
        yield case


def generate_records(n: int, seed: int, *, specialties: list[str] | None = None, tasks: list[str] | None = None,
                     kb_dirs: list[str | Path] | None = None, bias_variants: bool = False,
                     include_shipped: bool = True, compact: bool = False) -> Iterator[Record]:
    """Stream Records: one per requested task per case (plus bias-probe copies when asked)."""
    for _, records in iter_cases_and_records(n, seed, specialties=specialties, tasks=tasks, kb_dirs=kb_dirs,
                                             bias_variants=bias_variants, include_shipped=include_shipped,
                                             compact=compact):
        yield from records
