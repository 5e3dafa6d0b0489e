"""The PHI bars of issue #14 on medtune's synthetic notes: a test that fails below them.

Recall >= 0.99 for every structured identifier type and >= 0.95 for names (an identifier counts
only when every character of it is redacted); clinical content kept intact >= 0.99. The table in
docs/security.md comes from `python bench/phi_table.py`, which runs the same scoring.
"""

from collections import Counter

import pytest

from medtune.security.phi.detector import PhiDetector
from medtune.security.phi.measure import score
from medtune.security.phi.synthetic import generate_note, generate_phi_set
from medtune.security.phi.types import PhiType


@pytest.fixture(scope="module")
def detector():
    return PhiDetector(use_presidio=False)  # medtune's own recognizers: what a core install has


@pytest.mark.parametrize("heldout", [False, True], ids=["main", "heldout"])
def test_recall_and_retention_meet_the_bars(detector, heldout):
    notes = generate_phi_set(min_per_type=50, seed=0, heldout=heldout)
    counts = Counter(t for n in notes for _, _, t in n.phi)
    assert all(counts[t] >= 50 for t in PhiType), counts
    sc = score(detector, notes)
    examples = [m for m in sc.misses[:10]] + [d for d in sc.damaged[:10]]
    assert sc.failures() == [], (sc.failures(), examples)
    assert set(sc.clinical) >= {"drug", "lab", "vital", "diagnosis", "age", "year"}
    assert min(sc.clinical.values()) >= 50


def test_the_set_is_deterministic_and_gold_spans_are_exact():
    a, b = generate_note(7), generate_note(7)
    assert a.text == b.text and a.phi == b.phi and a.clinical == b.clinical
    assert generate_note(8).text != a.text
    for note in generate_phi_set(min_per_type=5):
        for start, end, _ in note.phi + note.clinical:
            assert note.text[start:end] == note.text[start:end].strip() and end > start
