"""Sample one patient's facts from a condition, and write them up as a short vignette.

Every random draw of a case happens here, from one ``random.Random`` per case, so a case
is a pure function of (seed, index, KB). Rendering (vignette, reasoning, records) is
deterministic on the facts, which is what lets a bias-probe copy change only the
demographics and keep every finding and option order.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import yaml

from ..utils.paths import resource_path
from .correlate import (
    correlate_vitals,
    correlated_lab,
    expand_groups,
    rate_agrees_with_findings,
    severities,
)
from .kb_schema import Condition, Lab

VITAL_KEYS = ("temperature", "heart_rate", "systolic_bp", "diastolic_bp", "respiratory_rate", "spo2")


@dataclass(frozen=True)
class Normals:
    """Normal vitals by age band, ethnicities and noise findings (resources/synth/normals.yaml)."""

    bands: list[dict[str, Any]]
    common: dict[str, dict[str, float]]
    ethnicities: list[str]
    ethnicity_weights: list[float]
    noise: dict[str, list[str]]
    term_rules: list[tuple[re.Pattern, dict[str, Any]]]

    def band(self, age: float) -> dict[str, Any]:
        return next(b for b in self.bands if age < b["below_age"])


@lru_cache(maxsize=1)
def load_normals() -> Normals:
    data = yaml.safe_load(resource_path("synth", "normals.yaml").read_text(encoding="utf-8"))
    eth = data["ethnicities"]
    rules = [(re.compile("|".join(re.escape(t) for t in r["terms"])), r) for r in data["term_rules"]]
    return Normals(data["vital_bands"], data["vital_common"], [e["name"] for e in eth],
                   [e["weight"] for e in eth], data["noise_symptoms"], rules)


_AGE_RULE = re.compile(r"\bage (over|above|older than|under|below|younger than) (\d+)( weeks| months)?")


def demographic_gate(text: str) -> bool:
    """Does ``text`` only fit some sexes or ages (so it must be checked per patient)?

    >>> demographic_gate("heavy menstrual periods"), demographic_gate("age over 50"), demographic_gate("fever")
    (True, True, False)
    """
    text = text.lower()
    return "maternal" not in text and (bool(_AGE_RULE.search(text)) or any(p.search(text) for p, _ in load_normals().term_rules))


def fits_patient(text: str, age: float, sex: str) -> bool:
    """May a finding or history item with this text appear in this patient?

    >>> fits_patient("heavy menstrual periods", 40, "male"), fits_patient("heavy menstrual periods", 40, "female")
    (False, True)
    >>> fits_patient("age over 50", 27, "female"), fits_patient("age under 12 weeks", 0.1, "male")
    (False, True)
    >>> fits_patient("maternal smoking during pregnancy", 0.1, "male")
    True
    """
    text = text.lower()
    if "maternal" in text:
        return True
    m = _AGE_RULE.search(text)
    if m:
        limit = int(m.group(2)) / {" weeks": 52, " months": 12}.get(m.group(3) or "", 1)
        if (m.group(1) in ("over", "above", "older than")) != (age > limit):
            return False
    for pattern, rule in load_normals().term_rules:
        if pattern.search(text) and (sex != rule["sex"] or not rule.get("min_age", 0) <= age <= rule.get("max_age", 200)):
            return False
    return True


def gate_condition(cond: Condition, age: float, sex: str) -> Condition:
    """``cond`` without the items this patient cannot have (a man's menstrual history, "age over 50" at 27).

    Demographic-neutral conditions lose every gated item, whatever the patient, so a bias-probe
    copy with another sex or age is still coherent.
    """
    def ok(text: str) -> bool:
        return not demographic_gate(text) if cond.demographic_neutral else fits_patient(text, age, sex)

    p, e = cond.presentation, cond.epidemiology
    return cond.model_copy(update={
        "presentation": p.model_copy(update={"symptoms": [x for x in p.symptoms if ok(x.name)],
                                              "chief_complaints": [x for x in p.chief_complaints if ok(x)] or p.chief_complaints}),
        "epidemiology": e.model_copy(update={"risk_factors": [x for x in e.risk_factors if ok(x.name)]}),
        "exam_findings": [x for x in cond.exam_findings if ok(x.name)],
        "imaging": [x for x in cond.imaging if ok(f"{x.study} {x.finding}")],
    })


@dataclass
class Prepared:
    """Per-condition material computed once per KB: option pools and rule-out labs."""

    cond: Condition
    differentials: list[dict[str, Any]]          # {name, condition_id, discriminator}
    distractors: list[str]                       # differential names first, then same specialty
    rule_out_labs: list[tuple[Condition, Lab]] = field(default_factory=list)
    overlap_symptoms: list[tuple[Condition, str]] = field(default_factory=list)
    overlap_complaints: list[tuple[Condition, str]] = field(default_factory=list)
    gated: bool = False  # has items that fit only some sexes or ages (see gate_condition)
    # Wording pools (synth.pools): pertinent negatives and incidental history that fit this
    # condition, (text, owner condition) distractors for the treatment and mechanism questions,
    # and why each diagnosis distractor is wrong.
    negatives: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    treatments: list[tuple[str, str]] = field(default_factory=list)
    mechanisms: list[tuple[str, str]] = field(default_factory=list)
    option_reasons: dict[str, str] = field(default_factory=dict)


# Share of cases presenting atypically: the complaint a differential would also bring, the
# shared non-specific symptoms, and the diagnosis carried by an objective result (a lab or a
# study) instead of a pathognomonic symptom. Real patients do this (the elderly MI without
# chest pain); without it a bag-of-words classifier reads the label off the symptom wording.
ATYPICAL_RATE = 0.3


def _clip_gauss(rng: random.Random, d: Any) -> float:
    mean, sd, lo, hi = (d["mean"], d["sd"], d["min"], d["max"]) if isinstance(d, dict) else (d.mean, d.sd, d.min, d.max)
    return min(hi, max(lo, rng.gauss(mean, sd)))


def sample_age(cond: Condition, rng: random.Random) -> float:
    """Triangular on [min, max] with the mode at the peak; pregnancy keeps ages 15-50."""
    a = cond.epidemiology.age
    lo, hi, peak = a.min, a.max, a.peak
    if cond.pregnancy:
        lo, hi = max(lo, 15.0), min(hi, 50.0)
        peak = min(max(peak, lo), hi)
    age = rng.triangular(lo, hi, peak) if hi > lo else lo
    return round(age, 2) if age < 2 else float(int(age))


def sample_sex(cond: Condition, rng: random.Random) -> str:
    if cond.pregnancy:
        return "female"
    return "male" if rng.random() < cond.epidemiology.sex.get("male", 0.0) else "female"


def sample_vitals(cond: Condition, age: float, rng: random.Random) -> dict[str, float]:
    """Condition distributions where given, age-band normals for the rest; kept physiologic."""
    normals = load_normals()
    band = normals.band(age)
    out: dict[str, float] = {}
    for key in VITAL_KEYS:
        dist = cond.vitals.get(key) or band.get(key) or normals.common[key]
        out[key] = _clip_gauss(rng, dist)
    # A pulse pressure below 10 mmHg is not a living patient; keep diastolic under systolic.
    out["diastolic_bp"] = max(20.0, min(out["diastolic_bp"], out["systolic_bp"] - 15))
    return {k: (round(v, 1) if k == "temperature" else float(round(v))) for k, v in out.items()}


def lab_value(lab: Lab, abnormal: bool, rng: random.Random) -> float:
    """Abnormal values log-uniform over the characteristic range; normal ones inside the reference."""
    if abnormal:
        lo, hi = lab.abnormal.min, lab.abnormal.max
        v = math.exp(rng.uniform(math.log(lo), math.log(hi))) if lo > 0 else rng.uniform(lo, hi)
    else:
        lo, hi = lab.reference.low, lab.reference.high
        v = rng.uniform(lo + 0.15 * (hi - lo), hi - 0.15 * (hi - lo))
    return round_lab(v)


def round_lab(v: float) -> float:
    """Three significant figures, as a lab would report.

    >>> round_lab(1234.5), round_lab(4.5678), round_lab(0.01234)
    (1234.0, 4.57, 0.0123)
    """
    if v == 0:
        return 0.0
    digits = max(0, 2 - int(math.floor(math.log10(abs(v)))))
    return float(round(v, digits))


def fmt_num(v: float) -> str:
    """Numbers as a clinician writes them: no trailing ``.0``.

    >>> fmt_num(37.0), fmt_num(4.57), fmt_num(2500000.0)
    ('37', '4.57', '2,500,000')
    """
    return f"{v:,.0f}" if abs(v) >= 1e5 else f"{v:g}"


def lab_flag(lab: Lab, value: float) -> str:
    return "high" if value > lab.reference.high else "low" if value < lab.reference.low else "normal"


def _sample_items(items: list, rng: random.Random) -> list[int]:
    return [i for i, it in enumerate(items) if rng.random() < it.probability]


def _ensure_evidence(cond: Condition, picked: dict[str, list[int]], objective_only: bool = False) -> None:
    """Force the likeliest discriminating finding when sampling drew none (keeps cases inferable)."""
    pools = {"labs": cond.labs, "imaging": cond.imaging}
    if not objective_only:
        pools.update(symptoms=cond.presentation.symptoms, exam=cond.exam_findings)
    if any(pools[k][i].discriminating for k, idx in picked.items() if k in pools for i in idx):
        return
    best = max(((it.probability, k, i) for k, items in pools.items() for i, it in enumerate(items)
                if it.discriminating), default=None)
    if best is not None:
        picked[best[1]].append(best[2])
        picked[best[1]].sort()


# Most items a vignette lists per section: keeps records near 450 tokens for CPU training.
CAPS = {"symptoms": 5, "exam": 3, "labs": 4, "imaging": 2}


def _cap(picked: dict[str, list[int]], cond: Condition) -> None:
    """Trim each section to CAPS, keeping discriminating items first (evidence is never cut)."""
    pools = {"symptoms": cond.presentation.symptoms, "exam": cond.exam_findings, "labs": cond.labs,
             "imaging": cond.imaging}
    for key, cap in CAPS.items():
        idx = picked[key]
        if len(idx) > cap:
            keep = sorted(idx, key=lambda i: (not pools[key][i].discriminating, i))[:cap]
            picked[key] = sorted(keep)


def _make_atypical(cond: Condition, picked: dict[str, list[int]], rng: random.Random) -> None:
    """Only shared, non-specific complaints in the history; a discriminating lab, forced abnormal,
    carries the diagnosis (the symptoms come from the differentials' shared features)."""
    picked["symptoms"], picked["exam"], picked["imaging"] = [], [], []
    disc = [i for i, lab in enumerate(cond.labs) if lab.discriminating]
    picked["labs"] = sorted(set(i for i in picked["labs"] if i in disc) or {max(disc, key=lambda i: cond.labs[i].probability)})


def _pick_noise(cond: Condition, age: float, rng: random.Random) -> list[str]:
    pool = load_normals().noise["child" if age < 12 else "adult"]
    own = " ".join(s.name.lower() for s in cond.presentation.symptoms)
    usable = [n for n in pool if not any(len(w) > 4 and w in own for w in n.lower().split())]
    k = min(len(usable), rng.choice((0, 0, 1, 1, 2)))
    return rng.sample(usable, k)


def _duration(cond: Condition, rng: random.Random) -> dict[str, Any]:
    d = cond.presentation.duration
    v = rng.uniform(d.min, d.max)
    v = float(round(v)) if v >= 3 else round(v * 2) / 2 or d.min
    return {"value": v, "unit": d.unit}


def _pick_findings(cond: Condition, rng: random.Random) -> tuple[dict[str, list[int]], bool]:
    """Indices of the symptoms, exam findings, labs and studies present, and whether atypical."""
    picked = {"symptoms": _sample_items(cond.presentation.symptoms, rng),
              "exam": _sample_items(cond.exam_findings, rng),
              "labs": _sample_items(cond.labs, rng), "imaging": _sample_items(cond.imaging, rng)}
    atypical = rng.random() < ATYPICAL_RATE and any(lab.discriminating for lab in cond.labs)
    symptoms = cond.presentation.symptoms
    if atypical:
        _make_atypical(cond, picked, rng)
    else:
        _ensure_evidence(cond, picked)
        if len(picked["symptoms"]) < 2:  # a vignette needs at least two symptoms
            order = sorted(range(len(symptoms)), key=lambda i: -symptoms[i].probability)
            picked["symptoms"] = sorted(set(picked["symptoms"]) | set(order[:2]))
        if not picked["exam"] and cond.exam_findings:
            picked["exam"] = [max(range(len(cond.exam_findings)), key=lambda i: cond.exam_findings[i].probability)]
    _cap(picked, cond)
    return picked, atypical


def _complaint_and_extras(prep: Prepared, cond: Condition, age: float, sex: str, atypical: bool,
                          picked: dict[str, list[int]], rng: random.Random) -> tuple[str, list[str]]:
    """The chief complaint and symptoms borrowed from differentials (shared features)."""
    neutral = cond.demographic_neutral
    overlap = [(c, s) for c, s in prep.overlap_symptoms if _fits(c, sex, neutral) and fits_patient(s, age, sex)
               and not (neutral and demographic_gate(s))]
    complaint = rng.choice(cond.presentation.chief_complaints)
    if atypical and overlap:
        # Mimic one differential: its complaint and shared symptoms; the lab tells them apart.
        mimic = rng.choice(overlap)[0]
        same = [s for c, s in overlap if c.id == mimic.id]
        extra = rng.sample(same, min(len(same), 3))
        complaint = rng.choice([s for c, s in prep.overlap_complaints if c.id == mimic.id and fits_patient(s, age, sex)]
                               or [complaint])
    else:
        extra = [s for _, s in rng.sample(overlap, min(len(overlap), int(rng.random() < 0.35)))]
    if atypical and not extra:  # nothing to mimic: fall back to the condition's non-specific symptoms
        plain = [i for i, x in enumerate(cond.presentation.symptoms) if not x.discriminating]
        picked["symptoms"] = sorted(rng.sample(plain, min(2, len(plain))))
    return complaint, extra


def sample_facts(prep: Prepared, rng: random.Random) -> dict[str, Any]:
    """All random choices of one case: patient, findings, values and the option layouts."""
    normals = load_normals()
    age = sample_age(prep.cond, rng)
    sex = sample_sex(prep.cond, rng)
    cond = gate_condition(prep.cond, age, sex) if prep.gated else prep.cond
    ethnicity = rng.choices(normals.ethnicities, normals.ethnicity_weights)[0]
    risk = [rf.name for rf in cond.epidemiology.risk_factors if rng.random() < rf.prevalence]
    picked, atypical = _pick_findings(cond, rng)
    sev = severities(cond, rng)  # draws only for conditions with correlation groups
    if sev:
        picked["labs"] = expand_groups(cond, picked["labs"])
    if atypical:
        risk = []
    labs = [(lab, _lab_value(cond, lab, i in picked["labs"], sev, rng)) for i, lab in enumerate(cond.labs)
            if i in picked["labs"] or (lab.discriminating and not atypical)]
    neutral = cond.demographic_neutral
    rule_out = [lab for c, lab in prep.rule_out_labs if _fits(c, sex, neutral)]
    n_rule_out = min(3, len(rule_out)) if atypical else rng.choice((1, 1, 2))
    labs += [(lab, lab_value(lab, False, rng)) for lab in rng.sample(rule_out, min(len(rule_out), n_rule_out))]
    complaint, extra = _complaint_and_extras(prep, cond, age, sex, atypical, picked, rng)
    n_opts = 5 if len(prep.distractors) >= 4 else 4
    n_wrong = 3
    return {
        "age": age, "sex": sex, "ethnicity": ethnicity, "pregnant": cond.pregnancy, "risk_factors": risk,
        "chief_complaint": complaint, "atypical": atypical,
        "duration": _duration(cond, rng),
        "symptoms": [cond.presentation.symptoms[i].name for i in picked["symptoms"]],
        "other_symptoms": extra + _pick_noise(cond, age, rng),
        "discriminating": _discriminating_names(cond, picked, labs),
        "exam": [cond.exam_findings[i].name for i in picked["exam"]],
        "vitals": rate_agrees_with_findings(
            correlate_vitals(cond, sample_vitals(cond, age, rng), sev, rng) if sev else sample_vitals(cond, age, rng),
            [cond.imaging[i].finding for i in picked["imaging"]]),
        "labs": [{"name": lab.name, "value": v, "unit": lab.unit, "reference": [lab.reference.low, lab.reference.high],
                  "flag": lab_flag(lab, v)} for lab, v in labs],
        "imaging": [{"study": cond.imaging[i].study, "finding": cond.imaging[i].finding} for i in picked["imaging"]],
        "mcq_distractors": rng.sample(prep.distractors[: max(n_opts - 1, 6)], min(n_opts - 1, len(prep.distractors))),
        "mcq_position": rng.randrange(n_opts),
        "mgmt_distractors": rng.sample(cond.management.wrong_next_steps, n_wrong),
        "mgmt_position": rng.randrange(n_wrong + 1),
        "rng_tail": rng.random(),  # spare draw for bias probes, so variants never shift other draws
    }


def _lab_value(cond: Condition, lab: Lab, abnormal: bool, sev: list[float], rng: random.Random) -> float:
    """A lab's value; abnormal members of a correlation group sit at their group's severity."""
    grouped = correlated_lab(cond, lab, sev, rng) if abnormal and sev else None
    return round_lab(grouped) if grouped is not None else lab_value(lab, abnormal, rng)


def _fits(other: Condition, sex: str, both_sexes: bool) -> bool:
    """May a finding borrowed from ``other`` appear in this patient? Never from a condition of
    pregnancy or of the other sex (no prostate findings in women); for demographic-neutral
    conditions only from conditions of both sexes, so a sex-swapped bias probe stays coherent."""
    sexes = other.epidemiology.sex
    if other.pregnancy:
        return False
    if both_sexes:
        return sexes.get("male", 0) > 0 and sexes.get("female", 0) > 0
    return sexes.get(sex, 0) > 0


def _discriminating_names(cond: Condition, picked: dict[str, list[int]], labs: list[tuple[Lab, float]]) -> list[str]:
    """The discriminating evidence present in this case, as it will be cited in the reasoning."""
    out = [cond.presentation.symptoms[i].name for i in picked["symptoms"] if cond.presentation.symptoms[i].discriminating]
    out += [cond.exam_findings[i].name for i in picked["exam"] if cond.exam_findings[i].discriminating]
    values = {lab.name: v for lab, v in labs}
    out += [f"{cond.labs[i].name} {fmt_num(values[cond.labs[i].name])} {cond.labs[i].unit}" for i in picked["labs"]
            if cond.labs[i].discriminating and lab_flag(cond.labs[i], values[cond.labs[i].name]) != "normal"]
    out += [f"{cond.imaging[i].study}: {cond.imaging[i].finding}" for i in picked["imaging"] if cond.imaging[i].discriminating]
    return out
