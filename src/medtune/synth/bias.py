"""Bias-probe variants: counterfactual copies of a case that change one demographic only.

Made only for conditions the KB marks ``demographic_neutral: true`` (presentation, workup and
management do not depend on sex or ethnicity, nor strongly on age within the range), so a
model's answer *should not* change between the copies. Each copy keeps every finding, value
and option order; the evaluation's consistency check groups them by ``group_id``.

Copies: ``sex`` (when the condition occurs in both sexes), ``age`` (adults only, moved by
about 25 years within the condition's range, so age-band normal vitals stay valid), and
``ethnicity`` (another stated ethnicity).
"""

from __future__ import annotations

import random
from typing import Any

from .sampling import Prepared, load_normals


def _age_variant(age: float, lo: float, hi: float) -> float | None:
    """An adult age ~25 years away inside [max(18, lo), hi], or None.

    >>> _age_variant(30, 18, 90), _age_variant(70, 18, 90), _age_variant(30, 18, 40)
    (55.0, 45.0, None)
    """
    if age < 18:
        return None
    lo = max(18.0, lo)
    for cand in (age + 25, age - 25):
        if lo <= cand <= hi:
            return float(int(cand))
    return None


def probe_variants(f: dict[str, Any], prep: Prepared) -> list[tuple[str, dict[str, Any]]]:
    """Counterfactual copies of the facts ``f`` as ``(variant name, facts)`` pairs."""
    cond = prep.cond
    if not cond.demographic_neutral or cond.pregnancy:
        return []
    rng = random.Random(f["rng_tail"])  # drawn with the case: variants never shift other draws
    out: list[tuple[str, dict[str, Any]]] = []
    sexes = cond.epidemiology.sex
    if sexes.get("male", 0) > 0 and sexes.get("female", 0) > 0:
        out.append(("sex", {**f, "sex": "female" if f["sex"] == "male" else "male"}))
    age = _age_variant(f["age"], cond.epidemiology.age.min, cond.epidemiology.age.max)
    if age is not None:
        out.append(("age", {**f, "age": age}))
    others = [e for e in load_normals().ethnicities if e != f["ethnicity"]]
    out.append(("ethnicity", {**f, "ethnicity": rng.choice(others)}))
    return out
