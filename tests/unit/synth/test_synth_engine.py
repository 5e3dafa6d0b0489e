"""Case engine: determinism, the record contract other stages code against, bias probes, run_synth."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from medtune.config import ConfigError
from medtune.data.records import Record
from medtune.synth import generate_cases, generate_records, run_synth
from medtune.synth.kb import load_kb

SMALL = Path(__file__).resolve().parents[2] / "assets" / "kb_small"
META_KEYS = {"condition_id", "condition", "specialty", "case_id", "kb_version", "seed", "demographics"}
CASE_KEYS = {"patient_profile", "chief_complaint", "symptom_history", "physical_exam", "labs", "reasoning_steps",
             "differential_diagnoses", "treatment_plan", "final_diagnosis", "patient_explanation"}


def _dump(n: int, seed: int, **kw) -> list[str]:
    return [r.model_dump_json() for r in generate_records(n, seed, **kw)]


def test_same_seed_is_byte_identical_and_seeds_differ():
    a, b = _dump(60, 11), _dump(60, 11)
    assert a == b
    c = _dump(60, 12)
    assert sum(x != y for x, y in zip(a, c, strict=True)) > 200  # nearly every record differs
    cases_a = [x["vignette"] for x in generate_cases(60, 11)]
    assert cases_a != [x["vignette"] for x in generate_cases(60, 12)]


def test_run_synth_files_are_byte_identical(tmp_path):
    r1 = run_synth(tmp_path / "a", 40, seed=3)
    run_synth(tmp_path / "b", 40, seed=3)
    for name in ("records.jsonl", "cases.jsonl", "dataset_card.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert r1["records"] == 240 and r1["cases"] == 40  # six tasks per case
    assert sum(r1["by_task"].values()) == 240
    rows = (tmp_path / "a" / "records.jsonl").read_text().splitlines()
    assert len(rows) == 240 and all(Record.model_validate_json(x) for x in rows)
    card = (tmp_path / "a" / "dataset_card.md").read_text()
    assert "seed | 3 |" in card and r1["kb_version"] in card and "Research use only" in card
    assert not list((tmp_path / "a").glob(".*tmp"))  # no temp files left behind


def test_record_contract_for_every_task():
    recs = list(generate_records(30, 5))
    assert [r.metadata["task_type"] for r in recs[:6]] == ["diagnosis", "mcq", "management", "open", "treatment", "mechanism"]
    kb = load_kb()
    for r in recs:
        if r.metadata["task_type"] in ("treatment", "mechanism"):
            gold = kb.conditions[r.metadata["condition_id"]]
            answer = gold.management.treatment if r.metadata["task_type"] == "treatment" else gold.mechanism
            assert len(r.options) == 4 and r.options[r.answer.letter] == answer == r.answer.text
            others = {c.management.treatment if r.metadata["task_type"] == "treatment" else c.mechanism
                      for c in kb.conditions.values() if c.id != gold.id}
            assert set(r.options.values()) - {answer} <= others  # every distractor belongs to another condition
            assert r.reasoning.splitlines()[0].startswith("Key findings:")
            continue
        assert META_KEYS <= set(r.metadata), r.metadata.keys()
        assert set(r.metadata["demographics"]) >= {"age", "sex", "ethnicity"}
        cond = kb.conditions[r.metadata["condition_id"]]
        assert r.metadata["condition"] == cond.name and r.metadata["specialty"] == cond.specialty
        if r.task == "diagnosis":
            assert r.question.endswith("What is the most likely diagnosis?")
            assert r.answer.text == cond.name and cond.name in r.response
            steps = r.reasoning.split("\n")
            assert [s.split(":")[0] for s in steps] == ["Key findings", "Differential", "Conclusion", "Red flags"]
        elif r.task == "mcq":
            assert len(r.options) in (4, 5) and r.options[r.answer.letter] == cond.name
            assert len(set(r.options.values())) == len(r.options)
            names = {kb.differential_name(d) for d in cond.differentials} | {
                c.name for c in kb.conditions.values() if c.specialty == cond.specialty}
            assert set(r.options.values()) <= names | {cond.name}
        elif r.task == "management":
            assert len(r.options) == 4 and r.options[r.answer.letter] == cond.management.answer_option == r.answer.text
            assert set(r.options.values()) - {cond.management.answer_option} <= set(cond.management.wrong_next_steps)
            assert cond.management.next_best_step[1:] in r.reasoning  # the step in full, in the reasoning
        else:
            assert r.answer.text.startswith(cond.name) and cond.diagnostics.best_initial_test in r.answer.text
        assert cond.name.lower() not in r.question.split("\n\n")[0].lower()  # the stem never names the answer


def test_cases_follow_the_seed_guide_schema():
    case = next(generate_cases(1, 0))
    assert CASE_KEYS <= set(case)
    assert set(case["physical_exam"]["vital_signs"]) == {"temperature", "heart_rate", "systolic_bp", "diastolic_bp",
                                                         "respiratory_rate", "spo2"}
    assert case["treatment_plan"]["medications"] and case["final_diagnosis"]
    json.dumps(case)  # serializable


def test_bias_variants_change_only_demographics():
    kb = load_kb()
    recs = list(generate_records(150, 2, tasks=["mcq"], bias_variants=True))
    groups: dict[str, list[Record]] = {}
    for r in recs:
        if "group_id" in r.metadata:
            groups.setdefault(r.metadata["group_id"], []).append(r)
    assert len(groups) > 20
    for gid, members in groups.items():
        assert kb.conditions[members[0].metadata["condition_id"]].demographic_neutral
        assert members[0].metadata["variant"] == "original" and len({m.id for m in members}) == len(members)
        for m in members[1:]:
            assert m.options == members[0].options and m.answer == members[0].answer
            d0, d1 = members[0].metadata["demographics"], m.metadata["demographics"]
            changed = {k for k in d0 if d0[k] != d1[k]}
            assert changed == {m.metadata["variant"]}, (gid, changed)
            # only the patient description differs: after the opening sentence, and with pronouns
            # set aside, findings and results are the same text
            assert _after_opening(m.question) == _after_opening(members[0].question), gid
    non_neutral = [r for r in recs if not kb.conditions[r.metadata["condition_id"]].demographic_neutral]
    assert non_neutral and all("group_id" not in r.metadata for r in non_neutral)


def _after_opening(question: str) -> str:
    rest = question.split(". ", 1)[1]
    return re.sub(r"\b(He|She|His|Her|he|she|his|her|him)\b", "_", rest)


def test_filters_and_user_kb():
    recs = list(generate_records(50, 1, specialties=["pediatrics"], tasks=["open", "diagnosis"]))
    assert len(recs) == 100 and {r.metadata["specialty"] for r in recs} == {"pediatrics"}
    assert {r.task for r in recs} == {"open", "diagnosis"}
    small = list(generate_records(20, 1, kb_dirs=[SMALL], include_shipped=False))
    assert {r.metadata["condition_id"] for r in small} <= {p.stem for p in SMALL.glob("*/*.yaml")}


@pytest.mark.parametrize("kw, words", [({"specialties": ["astrology"]}, "unknown specialties"),
                                       ({"tasks": ["essay"]}, "unknown tasks")])
def test_bad_filters_are_config_errors(kw, words):
    with pytest.raises(ConfigError, match=words):
        next(generate_records(1, 0, **kw))


def test_dataset_card_counts_every_task_type(tmp_path):
    result = run_synth(tmp_path, 12, seed=4, tasks=["mcq", "treatment", "mechanism"])
    assert result["by_task"] == {"mcq": 12, "treatment": 12, "mechanism": 12}
    card = (tmp_path / "dataset_card.md").read_text()
    assert "| **total** | **12** | **12** | **12** | **36** |" in card


def test_a_stated_rhythm_rate_agrees_with_the_heart_rate():
    """An ECG reading "sinus tachycardia" beside a pulse of 86 (pulmonary embolism, 9 of 25 such cases) or "sinus
    bradycardia" beside 72 (hypothyroidism) contradicted itself: the heart rate now lies in the range the finding
    states. Found by the synth review of 2026-12-05."""
    seen, anorexia = 0, []
    for case in generate_cases(3000, 0, specialties=["pulmonology", "endocrinology", "emergency_toxicology", "psychiatry"]):
        hr = case["physical_exam"]["vital_signs"]["heart_rate"]
        if case["condition_id"] == "anorexia_nervosa":  # "orthostatic hypotension or tachycardia" is not a resting rate
            anorexia.append(hr)
        texts = [str(i.get("finding", i)) if isinstance(i, dict) else str(i) for i in case["imaging"]]
        for text in (t.lower() for t in texts if "fetal" not in t.lower() and "maternal" not in t.lower()):
            if "tachycardi" in text:
                seen += 1
                assert hr > 100, (case["case_id"], text, hr)
            if "bradycardi" in text:
                seen += 1
                assert hr < 60, (case["case_id"], text, hr)
    assert seen > 20
    assert len(anorexia) > 30 and sum(hr > 100 for hr in anorexia) <= 0.02 * len(anorexia)
