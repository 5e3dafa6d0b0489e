"""What the synth review of 2026-12-05 found in 66,440 generated records, each now held by a test: abbreviations
of the answer in its stem, textbook notes shown to every patient, menstrual symptoms in men, a STEMI-only answer
to every infarction (the rhythm-rate contradiction is in test_synth_engine.py, held-out near-duplicates in
test_synth_demo.py), and a management answer given away by its length."""

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


def test_the_management_answer_is_not_given_away_by_its_length():
    """The right next step was the longest of the four options in 85% of management items (the KB's wrong steps are
    short, its next steps long); each condition now gives a short option (`next_best_step_option`) and the validator
    refuses a right option over 1.25 times the longest wrong step. With lengths that carry no cue the right option
    is the longest about one time in four (chance) and not much more often the shortest."""
    items = [r for r in generate_records(3000, 0, tasks=["management"]) if r.task == "management"]
    assert len(items) > 2000
    longest = shortest = 0
    for r in items:
        right, others = len(r.options[r.answer.letter]), [len(t) for k, t in r.options.items() if k != r.answer.letter]
        longest += right > max(others)
        shortest += right < min(others)
        assert r.answer.text == r.options[r.answer.letter]
    assert longest / len(items) < 0.35, longest / len(items)
    assert shortest / len(items) < 0.35, shortest / len(items)
    full = {c.management.next_best_step for c in load_kb().conditions.values()}
    assert sum(r.answer.text in full for r in items) < len(items) / 4  # the short form, where the KB gives one


def test_near_names_and_score_bands_do_not_reach_the_stems():
    """Texts outside the aliases that all but named the answer: "PHQ-9 ... (moderate or worse depression)", "parent or
    sibling with polycystic kidneys", "hepatomegaly (polycystic liver)", and a CIWA-Ar "finding" that was the
    textbook's bands ("10-18 (moderate withdrawal) or 19 and above (severe withdrawal)"), not one patient's score."""
    shown = {"major_depressive_disorder": 0, "autosomal_dominant_polycystic_kidney_disease": 0, "alcohol_withdrawal": 0}
    for case in generate_cases(1500, 0, specialties=["psychiatry", "nephrology"]):
        v = case["vignette"].lower()
        leaks = [t for t in ("polycystic", "worse depression", "(moderate withdrawal", "or 19 and above") if t in v]
        assert not leaks, (case["case_id"], leaks)
        if case["condition_id"] in shown and ("phq-9" in v or "ciwa" in v or "dialysis" in v):
            shown[case["condition_id"]] += 1
    assert min(shown.values()) > 5, shown  # the findings are still shown, in their new words


def test_inline_choices_keep_names_that_contain_commas_whole():
    """"Which condition is most likely: schizophrenia, bipolar I disorder, current episode manic or delirium?" read as
    four choices; where a name has a comma the choices are separated by semicolons, so each name reads whole."""
    from medtune.synth.demo import demo_records

    whole = 0
    for r in demo_records(400, 0, specialties=["psychiatry", "emergency_toxicology"], inline_share=1.0):
        if "Which condition is most likely:" not in r.question:
            continue
        asked = r.question.rsplit("Which condition is most likely:", 1)[1].strip().rstrip("?")
        if "," in r.answer.text:
            choices = [c.strip().removeprefix("or ") for c in asked.split(";")]
            assert r.answer.text[0].lower() + r.answer.text[1:] in choices, (r.id, asked)
            whole += 1
    assert whole > 5
