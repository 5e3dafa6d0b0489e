"""Per-condition pools the case writer draws from: pertinent negatives, incidental history,
treatment and mechanism distractors, and the reason each diagnosis distractor is wrong.

Computed once per knowledge base (``engine.prepare``). Every pool is built so that nothing in it
can contradict or give away the condition: a pertinent negative or history item whose key words
occur in the condition's own texts (name, findings, risk factors, differentials) is left out, and
a treatment distractor sharing a drug or procedure word with the condition's own management is
left out (a rheumatoid arthritis case never offers hydroxychloroquine as a wrong treatment).

>>> sorted(content_words("IV loop diuretic (furosemide) with oxygen"))
['diuretic', 'furosemide', 'loop', 'oxygen']
"""

from __future__ import annotations

import re
from typing import Any

from .kb import KnowledgeBase
from .kb_schema import Condition

# Words too common to tie two findings or two treatments together.
_STOP = {"with", "and", "the", "for", "from", "that", "than", "into", "within", "then", "plus", "after", "before",
         "over", "under", "more", "less", "most", "often", "usually", "side", "both", "each", "other", "days",
         "weeks", "hours", "hour", "dose", "doses", "daily", "oral", "start", "started", "pain", "signs", "mild",
         "severe", "acute", "recent", "new", "only", "there", "this", "without"}
_PAREN = re.compile(r"\s*\([^()]*\)")


def content_words(text: str) -> set[str]:
    """Words of 4+ letters that carry meaning (a crude stem: a trailing 's' is dropped)."""
    words = {w.rstrip("s") if len(w) > 4 else w for w in re.findall(r"[a-z0-9-]{4,}", text.lower())}
    return {w for w in words if w not in _STOP}


def strip_parentheses(text: str) -> str:
    """'pinpoint pupils (miosis)' -> 'pinpoint pupils'."""
    return _PAREN.sub("", text).strip()


def _own_words(cond: Condition) -> set[str]:
    p = cond.presentation
    texts = [cond.name, *cond.aliases, *p.chief_complaints, *(s.name for s in p.symptoms),
             *(x.name for x in cond.exam_findings), *(r.name for r in cond.epidemiology.risk_factors)]
    texts += [ph for f in (*p.symptoms, *cond.exam_findings) for ph in f.phrasings]
    return set().union(*(content_words(t) for t in texts))


def _condition_text(cond: Condition) -> str:
    """Everything the KB says a case of ``cond`` may show, lower-cased, for key-word checks."""
    p = cond.presentation
    texts = [cond.name, *cond.aliases, *p.chief_complaints, p.course, *(s.name for s in p.symptoms),
             *(x.name for x in cond.exam_findings), *(r.name for r in cond.epidemiology.risk_factors),
             *(f"{i.study} {i.finding}" for i in cond.imaging), *(lab.name for lab in cond.labs)]
    texts += [ph for f in (*p.symptoms, *cond.exam_findings) for ph in f.phrasings]
    return " ".join(texts).lower()


def _mentions(text: str, keys: list[str]) -> bool:
    return any(re.search(rf"\b{re.escape(k)}", text) for k in keys)


def negative_pool(cond: Condition, symptoms: list[dict[str, Any]], exams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pertinent negatives this condition may state: items none of whose key words appear in any
    of the condition's own texts (so "denies fever" never appears in a febrile illness)."""
    text = _condition_text(cond)

    def usable(x: dict[str, Any]) -> bool:
        return cond.specialty in x.get("specialties", [cond.specialty]) and not _mentions(text, x.get("keys", []))

    return [{**x, "kind": "symptom"} for x in symptoms if usable(x)] + [{**x, "kind": "exam"} for x in exams if usable(x)]


def history_pool(kb: KnowledgeBase, cond: Condition, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Incidental history items that neither hint at nor contradict the condition."""
    words = " ".join([cond.name, *cond.aliases, *(r.name for r in cond.epidemiology.risk_factors),
                      *(kb.differential_name(d) for d in cond.differentials)]).lower()
    out = []
    for item in items:
        if cond.id in item.get("exclude", []) or cond.specialty in item.get("exclude_specialties", []):
            continue
        if any(re.search(rf"\b{re.escape(k)}", words) for k in item.get("keys", [])):
            continue
        limited = any(k in item for k in ("sex", "min_age", "max_age"))
        if cond.demographic_neutral and limited:  # bias-probe copies change sex and age
            continue
        out.append(item)
    return out


def history_fits(item: dict[str, Any], age: float, sex: str) -> bool:
    return (item.get("sex", sex) == sex and item.get("min_age", 0) <= age <= item.get("max_age", 200))


def _management_words(cond: Condition) -> set[str]:
    m = cond.management
    return set().union(*(content_words(t) for t in (m.treatment or "", m.next_best_step, *m.first_line)))


def _ranked_others(kb: KnowledgeBase, cond: Condition) -> list[Condition]:
    """KB differentials first, then the same specialty, then everything else (sorted, deterministic)."""
    diffs = [kb.conditions[d.condition] for d in cond.differentials if d.condition in kb.conditions]
    same = [c for cid, c in sorted(kb.conditions.items()) if c.specialty == cond.specialty and cid != cond.id]
    rest = [c for cid, c in sorted(kb.conditions.items()) if c.specialty != cond.specialty and cid != cond.id]
    seen, out = set(), []
    for c in diffs + same + rest:
        if c.id not in seen:
            seen.add(c.id)
            out.append(c)
    return out


def treatment_pool(kb: KnowledgeBase, cond: Condition, size: int = 6) -> list[tuple[str, str]]:
    """(treatment, condition name) of other conditions, none sharing a drug or procedure word with
    this condition's own management."""
    own = _management_words(cond)
    out, seen = [], {cond.management.treatment}
    for other in _ranked_others(kb, cond):
        t = other.management.treatment
        if t and t not in seen and not (content_words(t) & own):
            seen.add(t)
            out.append((t, other.name))
        if len(out) >= size:
            break
    return out


def mechanism_pool(kb: KnowledgeBase, cond: Condition, size: int = 6) -> list[tuple[str, str]]:
    """(mechanism, condition name) of other conditions: differentials first."""
    out = []
    for other in _ranked_others(kb, cond):
        if other.mechanism and other.mechanism != cond.mechanism:
            out.append((other.mechanism, other.name))
        if len(out) >= size:
            break
    return out


def hallmark(kb: KnowledgeBase, cond: Condition, other_name: str) -> str | None:
    """Why a distractor is wrong: its discriminator when it is a differential of ``cond``, else
    the absent hallmark of that KB condition (its likeliest discriminating finding)."""
    for d in cond.differentials:
        if kb.differential_name(d) == other_name:
            return d.discriminator
    other = next((c for c in kb.conditions.values() if c.name == other_name), None)
    if other is None:
        return None
    own = _own_words(cond)
    marks = sorted((f for f in (*other.presentation.symptoms, *other.exam_findings) if f.discriminating),
                   key=lambda f: -f.probability)
    for f in marks:
        text = strip_parentheses(f.name)
        if not content_words(text) & own:
            return f"{text} would be expected"
    return None
