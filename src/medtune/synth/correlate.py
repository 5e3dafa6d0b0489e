"""Findings that medicine correlates, sampled together (a condition's ``correlations:`` in the KB).

Each correlation group gets one severity ``u`` in [0, 1] per case. Its labs are abnormal together
or normal together (a DKA never shows a low pH with a normal bicarbonate), and each abnormal value
sits at quantile ``u`` (give or take ``spread``) of its characteristic range, counted away from
the reference range: a severe case has a lower pH, a lower bicarbonate, a higher anion gap and
higher ketones at once. Vitals in the group move to the same quantile of the condition's own
distribution, up or down as declared (Kussmaul breathing deepens as the acidosis worsens).

Only conditions that declare groups draw severities, so every other condition's cases keep
exactly the draws (and bytes) they had before correlations existed.

>>> from medtune.synth.kb_schema import Lab
>>> ph = Lab(name="pH", unit="pH", reference={"low": 7.35, "high": 7.45}, abnormal={"min": 6.9, "max": 7.3}, probability=0.9)
>>> round(position(ph, 1.0), 2), round(position(ph, 0.0), 2)  # severe -> far from the reference
(6.9, 7.3)
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist

from .kb_schema import Condition, Lab


def severities(cond: Condition, rng: random.Random) -> list[float]:
    """One severity per correlation group (no draw at all for conditions without groups)."""
    return [rng.random() for _ in cond.correlations]


def expand_groups(cond: Condition, picked_labs: list[int]) -> list[int]:
    """Lab indices with every group completed: one abnormal member makes the whole group abnormal."""
    index = {lab.name: i for i, lab in enumerate(cond.labs)}
    out = set(picked_labs)
    for group in cond.correlations:
        members = {index[name] for name in group.labs if name in index}
        if members & out:
            out |= members
    return sorted(out)


def group_of(cond: Condition, lab_name: str) -> int | None:
    """Index of the correlation group holding ``lab_name``, if any."""
    return next((g for g, group in enumerate(cond.correlations) if lab_name in group.labs), None)


def _jitter(u: float, spread: float, rng: random.Random) -> float:
    return min(1.0, max(0.0, u + rng.uniform(-spread, spread)))


def position(lab: Lab, q: float) -> float:
    """The abnormal value at severity quantile ``q`` (log scale for positive ranges), counted away
    from the reference range: a high-side lab rises with ``q``, a low-side lab falls."""
    lo, hi = lab.abnormal.min, lab.abnormal.max
    high_side = (lo + hi) / 2 > (lab.reference.low + lab.reference.high) / 2
    t = q if high_side else 1.0 - q
    if lo > 0:
        return math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo)))
    return lo + t * (hi - lo)


def correlated_lab(cond: Condition, lab: Lab, sev: list[float], rng: random.Random) -> float | None:
    """The abnormal value of a grouped lab at its group's severity; None for ungrouped labs."""
    g = group_of(cond, lab.name)
    if g is None:
        return None
    return position(lab, _jitter(sev[g], cond.correlations[g].spread, rng))


# A study that reads the rhythm's rate holds the heart rate to it (an ECG reading "sinus tachycardia" beside a pulse
# of 86 contradicts itself). Exam findings are left alone: "orthostatic hypotension or tachycardia" (anorexia
# nervosa) is a change on standing, not the resting rate. The mother's or the fetus's rate is not the patient's.
_RATE_STATED = (("tachycardi", lambda hr: hr > 100, lambda hr: 101 + hr % 25),
                ("bradycardi", lambda hr: hr < 60, lambda hr: 58 - hr % 12))


def rate_agrees_with_findings(vitals: dict[str, float], texts: list[str]) -> dict[str, float]:
    """``vitals`` with the heart rate moved into the range a shown study's finding states (tachycardia: over 100,
    bradycardia: under 60), deterministically from the drawn rate, so no random draw is added or moved.

    >>> rate_agrees_with_findings({"heart_rate": 86.0}, ["12-lead ECG: sinus tachycardia"])["heart_rate"]
    112.0
    >>> rate_agrees_with_findings({"heart_rate": 72.0}, ["abrupt fetal bradycardia"])["heart_rate"]
    72.0
    """
    hr = vitals["heart_rate"]
    for text in (t.lower() for t in texts):
        if "fetal" in text or "maternal" in text:
            continue
        for word, agrees, moved in _RATE_STATED:
            if word in text and not agrees(hr):
                hr = float(moved(int(hr)))
    return {**vitals, "heart_rate": hr}


def correlate_vitals(cond: Condition, vitals: dict[str, float], sev: list[float], rng: random.Random) -> dict[str, float]:
    """Vitals of a group redrawn at the group's severity quantile of the condition's distribution."""
    out = dict(vitals)
    for g, group in enumerate(cond.correlations):
        for key, direction in group.vitals.items():
            dist = cond.vitals[key]
            q = min(0.99, max(0.01, _jitter(sev[g], group.spread, rng)))
            z = NormalDist().inv_cdf(q) * (1 if direction == "rises" else -1)
            value = min(dist.max, max(dist.min, dist.mean + z * dist.sd))
            out[key] = round(value, 1) if key == "temperature" else float(round(value))
    out["diastolic_bp"] = max(20.0, min(out["diastolic_bp"], out["systolic_bp"] - 15))
    return out
