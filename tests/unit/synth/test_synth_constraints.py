"""Thousands of sampled cases: demographic and physiological constraints, letter balance, inferability."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from medtune.synth import generate_cases, generate_records
from medtune.synth.kb import load_kb
from medtune.synth.kb_schema import VITAL_BOUNDS

N_CASES = 3000


@pytest.fixture(scope="module")
def kb():
    return load_kb()


@pytest.fixture(scope="module")
def cases():
    return list(generate_cases(N_CASES, seed=2024))


def test_sex_limited_conditions_only_in_that_sex(kb, cases):
    seen = Counter()
    for c in cases:
        cond = kb.conditions[c["condition_id"]]
        sex = c["patient_profile"]["sex"]
        assert cond.epidemiology.sex.get(sex, 0) > 0, (c["case_id"], cond.id, sex)
        if re.search(r"prostat|testic", cond.id):
            assert sex == "male", (c["case_id"], cond.id)
            seen["male-only"] += 1
        if cond.pregnancy or re.search(r"ovar|endometri|polycystic_ovary", cond.id):
            assert sex == "female", (c["case_id"], cond.id)
            seen["female-only"] += 1
    assert seen["male-only"] > 20 and seen["female-only"] > 20  # the checks above really ran


def test_no_findings_of_the_other_sex_or_impossible_age(cases):
    male_words = re.compile(r"prostat|testic|scrot|erectile")
    female_words = re.compile(r"menstrua|menses|vagina|ovar|uter|pregnan|contracep|postmenopaus")
    for c in cases:
        stem = re.sub(r"maternal [^,.;]*", "", c["vignette"].lower())
        sex, age = c["patient_profile"]["sex"], c["patient_profile"]["age"]
        if sex == "female":
            assert not male_words.search(stem), (c["case_id"], male_words.search(stem))
        else:
            assert not female_words.search(stem), (c["case_id"], female_words.search(stem))
        if age < 11:
            assert not re.search(r"menstrua|menses|contracep", stem), c["case_id"]
        for m in re.finditer(r"\bage (over|under) (\d+)(?! weeks| months)", stem):
            assert (age > int(m.group(2))) == (m.group(1) == "over"), (c["case_id"], m.group(0), age)


def test_pregnancy_only_in_plausible_ages(kb, cases):
    pregnant = [c for c in cases if c["patient_profile"]["pregnant"]]
    assert len(pregnant) > 20
    for c in cases:
        cond = kb.conditions[c["condition_id"]]
        p = c["patient_profile"]
        assert p["pregnant"] == cond.pregnancy
        if p["pregnant"]:
            assert p["sex"] == "female" and 15 <= p["age"] <= 50, c["case_id"]
            assert "pregnant" in c["vignette"]
        else:
            assert "who is pregnant" not in c["vignette"]


def test_ages_within_condition_range_and_vignette_nouns(kb, cases):
    for c in cases:
        a = kb.conditions[c["condition_id"]].epidemiology.age
        age = c["patient_profile"]["age"]
        assert a.min - 1 <= age <= a.max, (c["case_id"], age)  # whole years are floored
        noun = re.search(r"-old (?:[A-Z][a-z]+ )+(man|woman|boy|girl)\b", c["vignette"]).group(1)
        assert (noun in ("boy", "girl")) == (age < 18)
        assert (noun in ("man", "boy")) == (c["patient_profile"]["sex"] == "male")


def test_vitals_are_physiologic(cases):
    for c in cases:
        v = c["physical_exam"]["vital_signs"]
        for key, (lo, hi) in VITAL_BOUNDS.items():
            assert lo <= v[key] <= hi, (c["case_id"], key, v[key])
        assert v["diastolic_bp"] <= v["systolic_bp"] - 15
        assert v["spo2"] <= 100
        if c["patient_profile"]["age"] < 1:
            assert v["heart_rate"] >= 80  # an infant's resting rate, never an adult's 60
    temps = np.array([c["physical_exam"]["vital_signs"]["temperature"] for c in cases])
    assert 36.0 < np.median(temps) < 37.6


def test_labs_flagged_against_their_reference(cases):
    for c in cases:
        for lab in c["labs"]:
            lo, hi = lab["reference"]
            expected = "high" if lab["value"] > hi else "low" if lab["value"] < lo else "normal"
            assert lab["flag"] == expected and lab["unit"]


def test_every_case_keeps_discriminating_evidence(kb, cases):
    for c in cases:
        assert c["key_evidence"], c["case_id"]
        assert all(e.split(":")[0].split(" ")[0] in c["vignette"] for e in c["key_evidence"])
        assert c["key_evidence"][0] in c["reasoning_steps"][2]  # the conclusion cites it


def test_correct_letters_are_balanced():
    letters: dict[tuple[str, int], Counter] = {}
    for r in generate_records(N_CASES, seed=77, tasks=["mcq", "management"]):
        letters.setdefault((r.task, len(r.options)), Counter())[r.answer.letter] += 1
    four = letters[("management", 4)]
    assert sum(four.values()) == N_CASES
    for (task, k), counts in letters.items():
        total = sum(counts.values())
        if total < 300:
            continue
        for letter in "ABCDE"[:k]:
            share = counts[letter] / total
            lo, hi = (0.20, 0.30) if k == 4 else (0.15, 0.25)
            assert lo <= share <= hi, (task, k, letter, share)


def test_inferability_tfidf_logistic_regression():
    """Trained on half of 5,000 cases, a bag-of-words classifier must beat chance by far but not be
    perfect: ~100% would mean the cases leak the label, a low score that they lack signal."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    cases = list(generate_cases(5000, seed=0))
    text = [c["vignette"] for c in cases]
    label = np.array([c["condition_id"] for c in cases])
    vec = TfidfVectorizer(min_df=2, sublinear_tf=True)
    train, test = vec.fit_transform(text[:2500]), vec.transform(text[2500:])
    clf = LogisticRegression(max_iter=300).fit(train, label[:2500])
    accuracy = float((clf.predict(test) == label[2500:]).mean())
    chance = 1 / len(set(label))
    print(f"inferability: TF-IDF + LR accuracy {accuracy:.4f} on 2,500 held-out cases (chance {chance:.4f})")
    assert accuracy > 20 * chance and accuracy > 0.6
    assert accuracy < 0.995
