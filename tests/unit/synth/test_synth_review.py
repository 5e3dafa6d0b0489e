"""What the synth review of 2026-12-05 found in 66,440 generated records, each now held by a test: abbreviations
of the answer in its stem, textbook notes shown to every patient, menstrual symptoms in men, a STEMI-only answer
to every infarction (the rhythm-rate contradiction is in test_synth_engine.py, held-out near-duplicates in
test_synth_demo.py)."""

from __future__ import annotations

import re

from medtune.synth import generate_cases, generate_records
from medtune.synth.kb import load_kb
from medtune.synth.kb_rules import _WORKUP_NOTE, _text_problems


def test_no_stem_names_its_answer_by_an_abbreviation():
    """Aliases under 4 characters were left out of the leak check ("Wells DVT score 2 or more (DVT likely)" in DVT
    cases, "close contact with a person with active TB"); they are matched as written, so "MS" is caught and
    "QTc 480 ms" is not."""
    kb = load_kb()
    short = {c.name: [a for a in c.aliases if len(a) < 4] for c in kb.conditions.values()}
    checked = 0
    for r in generate_records(4000, 0, tasks=["mcq"]):
        stem = r.question.rsplit("\n\n", 1)[0]
        for alias in short[r.answer.text or r.options[r.answer.letter]] if r.answer.letter else []:
            checked += 1
            assert not re.search(rf"\b{re.escape(alias)}\b", stem), (r.id, alias)
    assert checked > 500


def test_textbook_notes_are_caught_and_the_shipped_kb_has_none():
    for text in ("new confusion (older adults)", "at least 10^4 CFU/mL (usually E. coli)",
                 "patches in the flexures (face and extensors in infants)", "fever (often in the evening)"):
        assert _WORKUP_NOTE.search(text), text
    assert not _WORKUP_NOTE.search("rash on the face (malar)")
    assert [(c.name, p) for c in load_kb().conditions.values() for p in _text_problems(c)] == []


def test_menstrual_symptoms_only_in_women_of_menstrual_age():
    """"irregular or absent periods" (Cushing syndrome) and "light or infrequent periods" (Graves disease) reached
    24 male cases: the sex rule knew "menstrua" and "menses", not "periods"."""
    period = re.compile(r"\bperiods\b|\bmissed period\b|\bperiod pain\b|\bhad a period\b", re.IGNORECASE)
    women = 0
    for case in generate_cases(3000, 0, specialties=["endocrinology", "obstetrics_gynecology", "gastroenterology"]):
        if period.search(case["vignette"]):
            demo = case["demographics"]
            assert demo["sex"] == "female" and 11 <= demo["age"] <= 55, (case["case_id"], demo)
            women += 1
    assert women > 10


def test_an_infarction_without_st_elevation_is_not_answered_as_a_stemi():
    """The management answer said "primary PCI (STEMI)" for every infarction, 36 of 65 without ST elevation, and an
    ECG finding read "(NSTEMI)", naming the answer."""
    from medtune.synth.kb_rules import names_diagnosis

    names = names_diagnosis(load_kb().conditions["acute_myocardial_infarction"])
    assert names("prior MI") and not names("mild ischemia")
    seen = 0
    for r in generate_records(1500, 0, specialties=["cardiology"], tasks=["management", "mcq"]):
        if r.metadata.get("condition_id") == "acute_myocardial_infarction":
            seen += 1
            assert "(STEMI)" not in str(r.answer.text) and "NSTEMI" not in r.question, r.id
    assert seen > 100
