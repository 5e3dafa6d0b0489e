"""Correlated findings (KB `correlations:`): a DKA's glucose, pH, bicarbonate, PaCO2 and ketones agree."""

from __future__ import annotations

import numpy as np
import pytest

from medtune.synth import generate_cases
from medtune.synth.correlate import expand_groups
from medtune.synth.kb import load_kb


def _rank_corr(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.fixture(scope="module")
def cases():
    return list(generate_cases(1500, seed=11, specialties=["endocrinology", "emergency_toxicology"]))


def _labs(case) -> dict[str, dict]:
    return {lab["name"]: lab for lab in case["labs"]}


def test_every_dka_shows_its_acidosis_whole_and_the_values_agree(cases):
    dka = [c for c in cases if c["condition_id"] == "diabetic_ketoacidosis"]
    assert len(dka) > 60
    group = ["Venous pH", "Serum bicarbonate", "Arterial PaCO2", "Anion gap", "Serum beta-hydroxybutyrate", "Plasma glucose"]
    for c in dka:
        labs = _labs(c)
        assert all(labs[name]["flag"] != "normal" for name in group), labs  # never a normal pH beside a bicarbonate of 6
    ph = [_labs(c)["Venous pH"]["value"] for c in dka]
    assert _rank_corr(ph, [_labs(c)["Serum bicarbonate"]["value"] for c in dka]) > 0.8
    assert _rank_corr(ph, [_labs(c)["Arterial PaCO2"]["value"] for c in dka]) > 0.8  # respiratory compensation
    assert _rank_corr(ph, [_labs(c)["Anion gap"]["value"] for c in dka]) < -0.8
    assert _rank_corr(ph, [_labs(c)["Serum beta-hydroxybutyrate"]["value"] for c in dka]) < -0.8
    assert _rank_corr(ph, [c["physical_exam"]["vital_signs"]["respiratory_rate"] for c in dka]) < -0.5  # Kussmaul


def test_opioid_overdose_breathing_and_blood_gas_agree(cases):
    opioid = [c for c in cases if c["condition_id"] == "opioid_overdose"]
    with_gas = [c for c in opioid if _labs(c)["Arterial PaCO2"]["flag"] == "high"]
    assert len(with_gas) > 30
    for c in with_gas:
        assert _labs(c)["Arterial pH"]["flag"] == "low"  # a raised PaCO2 comes with its acidemia
    rr = [c["physical_exam"]["vital_signs"]["respiratory_rate"] for c in with_gas]
    assert _rank_corr(rr, [_labs(c)["Arterial PaCO2"]["value"] for c in with_gas]) < -0.5


def test_one_abnormal_member_makes_the_group_abnormal():
    dka = load_kb().conditions["diabetic_ketoacidosis"]
    names = [lab.name for lab in dka.labs]
    ph = names.index("Venous pH")
    expanded = {names[i] for i in expand_groups(dka, [ph])}
    assert expanded == {"Venous pH", "Serum bicarbonate", "Arterial PaCO2", "Anion gap", "Serum beta-hydroxybutyrate",
                        "Plasma glucose"}
    potassium = names.index("Potassium")
    assert expand_groups(dka, [potassium]) == [potassium]  # potassium is not in the group
