"""Evaluation statistics: intervals, paired tests, consistency, calibration, ROUGE-L.

Everything here is plain Python/numpy/scipy on per-item results, so scoring outputs
produced elsewhere (`medtune eval score`) never loads torch.

>>> s = accuracy_summary([True] * 30 + [False] * 70)
>>> s["accuracy"], s["ci95"]
(0.3, [0.219, 0.396])
>>> round(mcnemar([True, True, False, False] * 5, [True, False, False, False] * 5)["p_value"], 4)
0.0625
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval (Wilson, 1927): honest at small n and near 0/1, unlike p +- 1.96 SE.

    With no items nothing is known: the interval is the whole range (0, 1).

    >>> [round(x, 3) for x in wilson_interval(0, 10)]
    [0.0, 0.278]
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def accuracy_summary(correct: Sequence[bool], unparseable: int | None = None) -> dict[str, Any]:
    """Accuracy with its Wilson 95% interval; unparseable answers are already counted wrong.

    With no items there is no accuracy: ``accuracy`` is None and the interval the whole [0, 1]
    (reports show "no scorable items", never 0.0).

    >>> accuracy_summary([])
    {'n': 0, 'correct': 0, 'accuracy': None, 'ci95': [0.0, 1.0]}
    """
    n, k = len(correct), sum(bool(c) for c in correct)
    lo, hi = wilson_interval(k, n)
    out: dict[str, Any] = {"n": n, "correct": k, "accuracy": round(k / n, 4) if n else None, "ci95": [round(lo, 3), round(hi, 3)]}
    if unparseable is not None:
        out["unparseable"] = unparseable
    return out


def accuracy_by_group(rows: Iterable[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    """Per subject/specialty accuracy (``key`` is read from each row's ``group`` dict or the row).

    Open-ended rows (status "open") are left out: they have a ROUGE-L score, not a right or
    wrong answer, as in the summary's overall accuracy.

    >>> rows = [{"group": {"specialty": "cardiology"}, "correct": True},
    ...         {"group": {"specialty": "cardiology"}, "status": "open", "rougeL": 0.4}]
    >>> accuracy_by_group(rows, "specialty")["cardiology"]["n"]
    1
    """
    groups: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        g = (r.get("group") or {}).get(key, r.get(key))
        if g is not None and r.get("status") != "open":
            groups[str(g)].append(bool(r["correct"]))
    return {g: accuracy_summary(v) for g, v in sorted(groups.items())}


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict[str, Any]:
    """Paired comparison of two systems on the same items (McNemar, 1947).

    Only discordant items carry information: b = A right & B wrong, c = A wrong & B right.
    With b + c < 25 the exact binomial test is used (the chi-square approximation is poor
    there); otherwise the continuity-corrected chi-square.
    """
    from scipy.stats import binomtest, chi2

    if len(correct_a) != len(correct_b):
        raise ValueError(f"paired comparison needs the same items: {len(correct_a)} vs {len(correct_b)} results")
    b = sum(1 for x, y in zip(correct_a, correct_b) if x and not y)
    c = sum(1 for x, y in zip(correct_a, correct_b) if y and not x)
    if b + c == 0:
        return {"b": 0, "c": 0, "p_value": 1.0, "test": "none (no discordant items)"}
    if b + c < 25:
        return {"b": b, "c": c, "p_value": float(binomtest(b, b + c, 0.5).pvalue), "test": "exact binomial"}
    stat = (abs(b - c) - 1) ** 2 / (b + c)
    return {"b": b, "c": c, "statistic": round(stat, 4), "p_value": float(chi2.sf(stat, 1)), "test": "chi-square, continuity corrected"}


def paired_flips(correct_a: dict[str, bool], correct_b: dict[str, bool]) -> dict[str, list[str]]:
    """Items whose correctness changed from A to B: ``gained`` (A wrong, B right), ``lost`` (A right, B wrong).

    Their counts are McNemar's c and b on the common items.

    >>> paired_flips({"q1": False, "q2": True, "q3": True}, {"q1": True, "q2": False, "q3": True, "q4": True})
    {'gained': ['q1'], 'lost': ['q2']}
    """
    common = sorted(set(correct_a) & set(correct_b))
    return {"gained": [i for i in common if correct_b[i] and not correct_a[i]],
            "lost": [i for i in common if correct_a[i] and not correct_b[i]]}


def chance_level(option_counts: Sequence[int], declared: float | None = None) -> float | None:
    """Expected accuracy of uniform guessing: the mean of 1/(number of options) over items.

    Per item, so a mix of 4- and 5-option items gets its true chance level. Falls back to
    the benchmark's declared value when an item's option count is unknown (0).

    >>> chance_level([5, 5, 5])
    0.2
    >>> chance_level([4, 5])
    0.225
    >>> chance_level([4, 0], declared=0.25)
    0.25
    """
    if not option_counts or any(n <= 0 for n in option_counts):
        return declared
    return round(sum(1 / n for n in option_counts) / len(option_counts), 4)


NEWCOMBE = "Newcombe's hybrid score interval"


def paired_difference(correct_a: Sequence[bool], correct_b: Sequence[bool], z: float = 1.959964) -> dict[str, Any]:
    """Accuracy gain B - A on the same items with Newcombe's hybrid score interval (Newcombe 1998, method 10).

    Each accuracy gets its Wilson interval; their distances from the estimates are combined
    (square and add) with the continuity-corrected phi correlation of the paired outcomes. Unlike
    the paired Wald interval it stays inside [-1, 1] and does not collapse to a point when no
    item flips. Results of unequal length are refused (they are not paired); with no items there
    is no gain and no interval (None).

    >>> paired_difference([True] * 59 + [True] * 6 + [False] * 16 + [False] * 80,
    ...                   [True] * 59 + [False] * 6 + [True] * 16 + [False] * 80)
    {'gain': 0.0621, 'ci95': [0.0046, 0.1186], 'method': "Newcombe's hybrid score interval"}
    """
    if len(correct_a) != len(correct_b):
        raise ValueError(f"paired comparison needs the same items: {len(correct_a)} vs {len(correct_b)} results")
    n = len(correct_a)
    if n == 0:
        return {"gain": None, "ci95": None, "method": NEWCOMBE}
    both = sum(1 for x, y in zip(correct_a, correct_b) if x and y)
    b = sum(1 for x, y in zip(correct_a, correct_b) if x and not y)
    c = sum(1 for x, y in zip(correct_a, correct_b) if y and not x)
    p_a, p_b = (both + b) / n, (both + c) / n
    lo_a, hi_a = wilson_interval(both + b, n, z)
    lo_b, hi_b = wilson_interval(both + c, n, z)
    phi = _newcombe_phi(both, b, c, n - both - b - c)
    diff = p_b - p_a
    lower = diff - math.sqrt((p_b - lo_b) ** 2 - 2 * phi * (p_b - lo_b) * (hi_a - p_a) + (hi_a - p_a) ** 2)
    upper = diff + math.sqrt((hi_b - p_b) ** 2 - 2 * phi * (hi_b - p_b) * (p_a - lo_a) + (p_a - lo_a) ** 2)
    return {"gain": round(diff, 4), "ci95": [round(max(lower, -1.0), 4), round(min(upper, 1.0), 4)], "method": NEWCOMBE}


def _newcombe_phi(both: int, a_only: int, b_only: int, neither: int) -> float:
    """The correlation of the paired outcomes as Newcombe (1998) corrects it for method 10.

    With cross = both * neither - a_only * b_only: cross - n/2 when cross > n/2, 0 when
    0 <= cross <= n/2, cross itself when negative; divided by the root of the four margins'
    product (phi = 0 when a margin is empty).
    """
    n = both + a_only + b_only + neither
    margins = (both + a_only) * (b_only + neither) * (both + b_only) * (a_only + neither)
    if margins == 0:
        return 0.0
    cross = both * neither - a_only * b_only
    if cross > n / 2:
        cross -= n / 2
    elif cross >= 0:
        cross = 0
    return cross / math.sqrt(margins)


def majority_vote(letters: Sequence[str | None]) -> str | None:
    """Self-consistency (Wang et al., 2022): the most frequent parsed answer; ties go to the earliest sample.

    >>> majority_vote(["B", None, "C", "C", "B"])
    'B'
    >>> majority_vote([None, None]) is None
    True
    """
    counts = Counter(x for x in letters if x)
    if not counts:
        return None
    best = max(counts.values())
    return next(x for x in letters if x and counts[x] == best)


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> dict[str, Any]:
    """ECE (Guo et al., 2017): |accuracy - confidence| averaged over equal-width bins, weighted by size.

    Returns the bins too, so the reliability diagram plots the same numbers.
    """
    edges = [i / bins for i in range(bins + 1)]
    table = []
    ece, n = 0.0, len(confidences)
    for lo, hi in zip(edges[:-1], edges[1:]):
        idx = [i for i, p in enumerate(confidences) if lo < p <= hi or (lo == 0 and p == 0)]
        if not idx:
            continue
        conf = sum(confidences[i] for i in idx) / len(idx)
        acc = sum(bool(correct[i]) for i in idx) / len(idx)
        ece += len(idx) / n * abs(acc - conf)
        table.append({"lo": lo, "hi": hi, "count": len(idx), "confidence": round(conf, 4), "accuracy": round(acc, 4)})
    return {"ece": round(ece, 4), "bins": table}


def permutation_consistency(predictions: dict[str, list[str | None]]) -> dict[str, Any]:
    """Share of items whose chosen option TEXT is the same under every option order.

    ``predictions`` maps item id -> the chosen option's text under each permutation
    (None when unparseable). A model that reasons on content picks the same text;
    one that prefers a position does not.
    """
    consistent = [len(set(v)) == 1 and v[0] is not None for v in predictions.values() if v]
    out = accuracy_summary(consistent)
    return {"n": out["n"], "consistency": out["accuracy"], "ci95": out["ci95"]}


def counterfactual_consistency(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Demographic counterfactual consistency on the synthetic bias variants.

    Rows sharing ``group_id`` are the same case with only demographics changed; a fair
    model gives the same answer to all of them. A group counts as consistent only when every
    variant has the same parsed answer: no answer (pred None) is not the same answer, as in
    permutation_consistency. Reports the share of groups answered consistently and the groups that were not.
    """
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        gid = (r.get("group") or {}).get("group_id")
        if gid is not None:
            groups[str(gid)].append(r)
    groups = {g: v for g, v in groups.items() if len(v) > 1}
    if not groups:
        return {"groups": 0, "consistency": None}
    same = [len(answers := {r.get("pred") for r in v}) == 1 and None not in answers for v in groups.values()]
    flips = [g for g, ok in zip(groups, same) if not ok]
    return {"groups": len(groups), "consistency": round(sum(same) / len(same), 4),
            "ci95": accuracy_summary(same)["ci95"], "inconsistent_groups": flips[:20]}


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Mean ROUGE-L F1 (rouge_score, with stemming) for open-ended items."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references)]
    return {"n": len(scores), "rougeL_f1": round(sum(scores) / len(scores), 4) if scores else 0.0, "per_item": scores}


def length_vs_correctness(lengths: Sequence[int], correct: Sequence[bool], bins: int = 4) -> dict[str, Any]:
    """Accuracy by reasoning-length quartile and the point-biserial correlation.

    The seed guide reports long DeepSeek-R1 answers were less reliable; this measures it.
    """
    import numpy as np
    from scipy.stats import pointbiserialr

    if len(lengths) < 2 or len(set(lengths)) < 2 or len(set(map(bool, correct))) < 2:
        r, p = None, None
    else:
        res = pointbiserialr(np.array(correct, dtype=float), np.array(lengths, dtype=float))
        r, p = round(float(res.statistic), 4), float(res.pvalue)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    table = []
    for chunk in np.array_split(np.array(order, dtype=int), min(bins, max(len(order), 1))):
        if len(chunk):
            table.append({"min_len": int(lengths[chunk[0]]), "max_len": int(lengths[chunk[-1]]),
                          **accuracy_summary([bool(correct[i]) for i in chunk])})
    return {"pointbiserial_r": r, "p_value": p, "by_length": table}
