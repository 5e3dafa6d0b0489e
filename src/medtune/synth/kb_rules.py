"""Semantic rules of the knowledge base, beyond what the pydantic schema can say.

Each rule returns ``(field path, message, fix)`` triples; :mod:`medtune.synth.kb` turns
the path into a ``file:line`` location. The rules are those listed at the end of
docs/knowledge-base.md, plus two the case engine depends on (a reachable discriminating
finding, characteristic lab values that actually lie outside the reference range).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from .kb_schema import VITAL_BOUNDS, Condition

Problem = tuple[tuple, str, str]

# A parenthesis in text a case shows that says when a test is done or what it excludes is a
# workup note ("Skin biopsy (if atypical)", "normal (excludes hypoglycemia)"), and one that says what
# is usual or for whom ("(usually E. coli)", "(older adults)") is a textbook note shown to every
# patient: a vignette must not carry either. Such notes belong in the item's `note:` field.
_WORKUP_NOTE = re.compile(
    r"\([^()]*\b(if|only|when|unless|routinely|rarely|needed|indicated|performed|suspected|excludes?|excluded|excluding"
    r"|stage|severe cases|prognostic|screening|therapeutic|treatment line"
    r"|usually|often|typically|classically|misses|infants?|children|adults)\b[^()]*\)", re.IGNORECASE)


def _probabilities(cond: Condition) -> Iterator[tuple[tuple, float]]:
    for i, rf in enumerate(cond.epidemiology.risk_factors):
        yield ("epidemiology", "risk_factors", i, "prevalence"), rf.prevalence
    for i, s in enumerate(cond.presentation.symptoms):
        yield ("presentation", "symptoms", i, "probability"), s.probability
    for i, s in enumerate(cond.exam_findings):
        yield ("exam_findings", i, "probability"), s.probability
    for i, lab in enumerate(cond.labs):
        yield ("labs", i, "probability"), lab.probability
    for i, im in enumerate(cond.imaging):
        yield ("imaging", i, "probability"), im.probability


def _identity_problems(cond: Condition, path: Path) -> Iterator[Problem]:
    if cond.id != path.stem:
        yield ("id",), f"id {cond.id!r} must equal the file stem {path.stem!r}", f"rename the file or set id: {path.stem}"
    if cond.specialty != path.parent.name:
        yield (("specialty",), f"specialty {cond.specialty!r} must equal the folder name {path.parent.name!r}",
               "move the file into the folder of its specialty")


def _epidemiology_problems(cond: Condition) -> Iterator[Problem]:
    age, sex = cond.epidemiology.age, cond.epidemiology.sex
    if not 0 <= age.min <= age.peak <= age.max <= 110:
        yield (("epidemiology", "age"), f"need 0 <= min <= peak <= max <= 110, got min={age.min} peak={age.peak} max={age.max}",
               "ages are in years (use 0.08 for one month)")
    if abs(sum(sex.values()) - 1.0) > 1e-6:
        yield ("epidemiology", "sex"), f"sex probabilities sum to {sum(sex.values()):g}, not 1", "e.g. {male: 0.6, female: 0.4}"
    if any(p < 0 for p in sex.values()):
        yield ("epidemiology", "sex"), "sex probabilities must be >= 0", ""
    if cond.pregnancy:
        if sex.get("male", 0) > 0 or sex.get("female", 0) <= 0:
            yield (("pregnancy",), "pregnancy: true needs a female-only condition (sex: {female: 1.0})",
                   "set sex to {female: 1.0} or pregnancy: false")
        if age.min < 12 or age.max > 55:
            yield (("epidemiology", "age"), f"pregnancy: true needs an age range within 12-55, got {age.min:g}-{age.max:g}",
                   "narrow the age range")


def _vital_problems(cond: Condition) -> Iterator[Problem]:
    for key, dist in cond.vitals.items():
        if key not in VITAL_BOUNDS:
            yield (("vitals", key), f"unknown vital {key!r}", f"use one of {', '.join(VITAL_BOUNDS)}")
            continue
        lo, hi = VITAL_BOUNDS[key]
        if not (lo <= dist.min < dist.max <= hi):
            yield (("vitals", key), f"range {dist.min:g}-{dist.max:g} is not within the physiologically possible "
                   f"{lo:g}-{hi:g} with min < max", "check the unit (temperature in degC, pressures in mmHg, spo2 in %)")
        elif not dist.min <= dist.mean <= dist.max:
            yield ("vitals", key, "mean"), f"mean {dist.mean:g} lies outside min-max {dist.min:g}-{dist.max:g}", ""


def _lab_problems(cond: Condition) -> Iterator[Problem]:
    if not cond.labs and not cond.imaging:
        yield ("labs",), "need at least one lab or imaging item", "add a characteristic lab or study"
    for i, lab in enumerate(cond.labs):
        ref, ab = lab.reference, lab.abnormal
        if not lab.unit.strip():
            yield ("labs", i, "unit"), "lab needs a unit", "e.g. mg/dL, mmol/L, 10^9/L, %"
        if not ref.low < ref.high:
            yield ("labs", i, "reference"), f"reference low {ref.low:g} must be < high {ref.high:g}", ""
        if not ab.min < ab.max:
            yield ("labs", i, "abnormal"), f"abnormal min {ab.min:g} must be < max {ab.max:g}", ""
        elif ref.low <= ab.min and ab.max <= ref.high:
            yield (("labs", i, "abnormal"), f"abnormal range {ab.min:g}-{ab.max:g} lies inside the reference range "
                   f"{ref.low:g}-{ref.high:g}", "check that both use the same unit")


def _evidence_problems(cond: Condition) -> Iterator[Problem]:
    items = [*cond.presentation.symptoms, *cond.exam_findings, *cond.labs, *cond.imaging]
    if not any(getattr(it, "discriminating", False) for it in items):
        yield ((), "no symptom, exam finding, lab or study is marked discriminating: true; the engine needs one "
               "to keep every case inferable", "mark the findings that separate it from its differentials")


def _shown_texts(cond: Condition) -> Iterator[tuple[tuple, str]]:
    """Every text a case may show, with its field path."""
    p = cond.presentation
    for i, c in enumerate(p.chief_complaints):
        yield ("presentation", "chief_complaints", i), c
    for i, rf in enumerate(cond.epidemiology.risk_factors):
        yield ("epidemiology", "risk_factors", i, "name"), rf.name
    for key, items in (("symptoms", p.symptoms), ("exam_findings", cond.exam_findings)):
        loc = ("presentation", key) if key == "symptoms" else (key,)
        for i, f in enumerate(items):
            yield (*loc, i, "name"), f.name
            for j, text in enumerate(f.phrasings):
                yield (*loc, i, "phrasings", j), text
    for i, lab in enumerate(cond.labs):
        yield ("labs", i, "name"), lab.name
    for i, im in enumerate(cond.imaging):
        yield ("imaging", i, "study"), im.study
        yield ("imaging", i, "finding"), im.finding


def names_diagnosis(cond: Condition):
    """A test of whether a text names ``cond``: its name or an alias of 4+ characters in any case, a shorter alias
    (an abbreviation: DVT, GAD, PE, MS) as written, so "MS" matches and "QTc 480 ms" does not.

    >>> from types import SimpleNamespace
    >>> test = names_diagnosis(SimpleNamespace(name="Multiple sclerosis", aliases=["MS"]))
    >>> test("prior MS relapse"), test("QTc 480 ms"), test("multiple sclerosis in a sibling")
    (True, False, True)
    """
    long_names = [cond.name, *(a for a in cond.aliases if len(a) >= 4)]
    words = re.compile(r"\b(" + "|".join(re.escape(x.lower()) for x in long_names) + r")\b")
    short = [a for a in cond.aliases if len(a) < 4]
    abbreviations = re.compile(r"\b(" + "|".join(map(re.escape, short)) + r")\b") if short else None
    return lambda text: bool(words.search(text.lower()) or (abbreviations and abbreviations.search(text)))


def _text_problems(cond: Condition) -> Iterator[Problem]:
    names = names_diagnosis(cond)
    for loc, text in _shown_texts(cond):
        m = _WORKUP_NOTE.search(text)
        if m:
            yield (loc, f"workup note {m.group(0)!r} would appear in a case", "move it to the item's `note:` field")
        if "phrasings" in loc and names(text):
            yield loc, "a phrasing names the diagnosis, so the case would give its answer away", "describe the finding instead"


def _correlation_problems(cond: Condition) -> Iterator[Problem]:
    labs, seen = {lab.name for lab in cond.labs}, set()
    for i, group in enumerate(cond.correlations):
        for j, name in enumerate(group.labs):
            if name not in labs:
                yield ("correlations", i, "labs", j), f"{name!r} is not a lab of this condition", f"use one of {sorted(labs)}"
            elif name in seen:
                yield ("correlations", i, "labs", j), f"lab {name!r} is in two correlation groups", "keep it in one"
            seen.add(name)
        for key in group.vitals:
            if key not in cond.vitals:
                yield (("correlations", i, "vitals", key), f"vital {key!r} has no distribution under `vitals:`",
                       "add its distribution for this condition or drop it from the group")
        if len(group.labs) + len(group.vitals) < 2:
            yield ("correlations", i), "a correlation group needs at least two items", ""


def condition_problems(cond: Condition, path: Path) -> list[Problem]:
    """All single-file rule violations of one parsed condition."""
    out = [*_identity_problems(cond, path), *_epidemiology_problems(cond), *_vital_problems(cond),
           *_lab_problems(cond), *_evidence_problems(cond), *_text_problems(cond), *_correlation_problems(cond)]
    for loc, p in _probabilities(cond):
        if not 0 < p <= 1:
            out.append((loc, f"probability {p:g} must be in (0, 1]", "drop the item instead of giving it 0"))
    if len(cond.management.wrong_next_steps) < 3:
        out.append((("management", "wrong_next_steps"), "need >= 3 wrong next steps", ""))
    out.extend(_option_length_problems(cond))
    return out


OPTION_LENGTH_RATIO = 1.25
"""How much longer than the longest wrong next step the management MCQ's right option may be: with every
right option the longest, a model learns to pick the longest option instead of the right one."""


def _option_length_problems(cond: Condition) -> Iterator[Problem]:
    m = cond.management
    longest = max((len(w) for w in m.wrong_next_steps), default=0)
    if longest and len(m.answer_option) > OPTION_LENGTH_RATIO * longest:
        field = "next_best_step_option" if m.next_best_step_option else "next_best_step"
        yield (("management", field), f"the right option ({len(m.answer_option)} characters) is more than "
               f"{OPTION_LENGTH_RATIO:g} times as long as the longest wrong next step ({longest}), a length cue to the answer",
               "give `next_best_step_option:`, the step in a few words, and keep the detail in `next_best_step`")


def differential_problems(cond: Condition, conditions: dict[str, Condition]) -> list[Problem]:
    """Differentials must resolve to a KB condition (other than itself) or a declared name."""
    out: list[Problem] = []
    for i, d in enumerate(cond.differentials):
        if d.condition is not None and d.condition not in conditions:
            out.append((("differentials", i, "condition"), f"differential {d.condition!r} is not a KB condition id",
                        f"fix the id or declare it with `name: {d.condition.replace('_', ' ').capitalize()}`"))
        elif d.condition == cond.id:
            out.append((("differentials", i, "condition"), "a condition cannot be its own differential", ""))
    return out
