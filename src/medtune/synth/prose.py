"""How a case is worded: phrasings, order, pertinent negatives, incidental history, layouts.

A case's facts (``sampling.sample_facts``) and its wording are drawn from two separate random
streams, ``medtune-synth:seed:i`` and ``medtune-synth-text:seed:i``: the facts are the same
whatever the wording (so records built from the facts alone, such as the quickstart's demo set,
do not change when the writing does), and the wording is still fixed by the seed. The data
(synonyms, negation frames, history items, question lines) is in resources/synth/phrasing.yaml.

>>> import random
>>> lex = [(re.compile(r"\\b(dyspnea)\\b"), ["shortness of breath"])]
>>> reword("exertional dyspnea", [], lex, 1.0, random.Random(0))
'exertional shortness of breath'
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

from ..utils.paths import resource_path
from .pools import history_fits, strip_parentheses

# Layout variants a case draws (each renderer in writeup.py has this many frames).
N_OPENINGS, N_SYMPTOM_FRAMES, N_VITALS, N_LABS, N_EXAM, N_IMAGING = 4, 4, 4, 3, 3, 2


@dataclass(frozen=True)
class Phrasing:
    """resources/synth/phrasing.yaml, compiled."""

    lexicon: list[tuple[re.Pattern, list[str]]]
    lexicon_rate: float
    negatives: dict[str, Any]
    history: list[dict[str, Any]]
    questions: dict[str, list[str]]


@lru_cache(maxsize=1)
def load_phrasing() -> Phrasing:
    data = yaml.safe_load(resource_path("synth", "phrasing.yaml").read_text(encoding="utf-8"))
    terms = sorted(data["lexicon"], key=len, reverse=True)  # longest first: "shortness of breath" before "breath"
    lexicon = [(re.compile(rf"\b({re.escape(t)})\b", re.IGNORECASE), data["lexicon"][t]) for t in terms]
    return Phrasing(lexicon, float(data["lexicon_rate"]), data["negatives"], data["history"], data["questions"])


def reword(text: str, phrasings: list[str], lexicon: list[tuple[re.Pattern, list[str]]], rate: float,
           rng: random.Random) -> str:
    """A finding as this case states it: one of the KB's own phrasings (half the time when it has
    some), else its text with each lexicon term swapped for a synonym with probability ``rate``."""
    if phrasings and rng.random() < 0.5:
        return rng.choice(phrasings)
    for pattern, alternatives in lexicon:
        if pattern.search(text) and rng.random() < rate:
            text = pattern.sub(rng.choice(alternatives), text, count=1)
    return text


def _phrasings(prep: Any) -> dict[str, list[str]]:
    cond = prep.cond
    return {f.name: list(f.phrasings) for f in (*cond.presentation.symptoms, *cond.exam_findings)}


def _mentions(text: str, keys: list[str]) -> bool:
    return any(re.search(rf"\b{re.escape(k)}", text) for k in keys)


def _negatives(prep: Any, f: dict[str, Any], ph: Phrasing, rng: random.Random) -> list[dict[str, Any]]:
    """1-3 pertinent negatives that fit this patient and contradict nothing shown."""
    if rng.random() >= ph.negatives["rate"]:
        return []
    shown = " ".join([f["chief_complaint"], *f["symptoms"], *f["other_symptoms"], *f["exam"]]).lower()
    usable = [x for x in prep.negatives
              if not _mentions(shown, x.get("keys", [])) and f["age"] >= x.get("min_age", 0)
              and all(f["vitals"][k] < v for k, v in x.get("vitals_below", {}).items())]
    return rng.sample(usable, min(len(usable), rng.choice((1, 2, 2, 3))))


def _history(prep: Any, f: dict[str, Any], rng: random.Random) -> list[str]:
    usable = [h for h in prep.history if history_fits(h, f["age"], f["sex"])]
    picked = rng.sample(usable, min(len(usable), rng.choice((0, 1, 1, 2))))
    groups = [h.get("group") for h in picked]
    if len(picked) == 2 and groups[0] and groups[0] == groups[1]:
        picked = picked[:1]  # one occupation per patient
    return [h["text"] for h in picked]


def _option_draw(pool: list[tuple[str, str]], rng: random.Random, n: int = 3) -> dict[str, Any]:
    """Distractors (text, condition they belong to) from the first six of a pool, and the answer's letter position."""
    picked = rng.sample(pool[:6], min(n, len(pool)))
    return {"distractors": picked, "position": rng.randrange(len(picked) + 1)}


def sample_style(prep: Any, f: dict[str, Any], rng: random.Random, compact: bool = False) -> dict[str, Any]:
    """Every wording choice of one case, from the case's own text stream ``rng``.

    ``compact`` keeps the same draws but marks the case for the short write-up (writeup.py): at
    most 3 symptoms, 2 exam findings and 1 study, terse vitals, abnormal results only and no
    reference ranges, one negative and one history item, and a reasoning that quotes the first
    clause of each discriminator.
    """
    ph = load_phrasing()
    phr = _phrasings(prep)
    # Borrowed symptoms (shared features of a differential, noise) lose their KB parentheses: "vomiting
    # (bilious later)" belongs to intussusception, not to the pyloric stenosis that borrows "vomiting".
    shown = {x: reword(x, phr.get(x, []), ph.lexicon, ph.lexicon_rate, rng) for x in [*f["symptoms"], *f["exam"]]}
    shown.update({x: reword(strip_parentheses(x), [], ph.lexicon, ph.lexicon_rate, rng) for x in f["other_symptoms"]})
    history_items = f["symptoms"] + f["other_symptoms"]
    return {
        "shown": shown,
        "symptom_order": rng.sample(history_items, len(history_items)),
        "exam_order": rng.sample(f["exam"], len(f["exam"])),
        "negatives": _negatives(prep, f, ph, rng),
        "history": _history(prep, f, rng),
        "history_first": rng.random() < 0.5, "compact": compact,
        "opening": rng.randrange(N_OPENINGS), "symptom_frame": rng.randrange(N_SYMPTOM_FRAMES),
        "negative_frame": rng.randrange(6), "vitals": rng.randrange(N_VITALS), "labs": rng.randrange(N_LABS),
        "lab_refs": rng.random() < 0.6, "exam_frame": rng.randrange(N_EXAM), "imaging": rng.randrange(N_IMAGING),
        "questions": {task: rng.randrange(len(lines)) for task, lines in sorted(ph.questions.items())},
        "treatment": _option_draw(prep.treatments, rng),
        "mechanism": _option_draw(prep.mechanisms, rng),
    }


def question_line(style: dict[str, Any] | None, task: str, default: str) -> str:
    """The question of a multiple-choice task as this case words it."""
    lines = load_phrasing().questions.get(task)
    if not style or not lines:
        return default
    return lines[style["questions"].get(task, 0) % len(lines)]
