"""Word lists for the recognizers: ``resources/phi/terms.yaml`` plus condition names from the KB."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import yaml

from ...utils.paths import resource_path


@dataclass(frozen=True)
class Terms:
    eponyms: frozenset[str]
    head_nouns: frozenset[str]
    not_names: frozenset[str]
    medical_words: frozenset[str]  # lower-case words of KB condition names, aliases and differentials
    condition_phrases: tuple[str, ...]  # KB names and aliases containing a capitalized word, longest first
    states: frozenset[str]
    state_codes: frozenset[str]
    countries: frozenset[str]


def _kb_phrases() -> list[str]:
    from ...synth.kb import load_kb

    kb = load_kb()
    phrases = []
    for c in kb.conditions.values():
        phrases += [c.name, *c.aliases]
        phrases += [d.name for d in c.differentials if d.name]
    return phrases


@lru_cache(maxsize=1)
def load_terms() -> Terms:
    raw = yaml.safe_load(resource_path("phi", "terms.yaml").read_text(encoding="utf-8"))
    phrases = _kb_phrases()
    words = {w.lower() for p in phrases for w in re.findall(r"[A-Za-z]+", p)}
    capitalized = sorted({p for p in phrases if re.search(r"\b[A-Z][a-z]", p)}, key=len, reverse=True)
    return Terms(
        eponyms=frozenset(raw["eponyms"]),
        head_nouns=frozenset(w.lower() for w in raw["head_nouns"]),
        not_names=frozenset(raw["not_names"]),
        medical_words=frozenset(words),
        condition_phrases=tuple(capitalized),
        states=frozenset(raw["us_states"]),
        state_codes=frozenset(raw["us_state_codes"]),
        countries=frozenset(raw["countries"]),
    )
