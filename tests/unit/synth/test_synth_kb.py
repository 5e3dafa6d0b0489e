"""The knowledge-base validator: every shipped file passes; each broken fixture fails for its reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medtune.synth.kb import KBError, load_kb

ASSETS = Path(__file__).resolve().parents[2] / "assets"
BROKEN = ASSETS / "kb_broken"

# broken fixture -> (field the error must name, words the message must contain)
EXPECTED = {
    "fahrenheit_temperature": ("vitals.temperature", "physiologically possible"),
    "id_mismatch": ("id", "file stem"),
    "unresolved_differential": ("differentials.0.condition", "not a KB condition id"),
    "sex_sum": ("epidemiology.sex", "sum to 1.2"),
    "male_pregnancy": ("pregnancy", "female-only"),
    "lab_units": ("labs.0.abnormal", "same unit"),
    "few_differentials": ("differentials", "at least 3"),
    "wrong_folder": ("specialty", "folder name"),
    "zero_probability": ("presentation.symptoms.1.probability", "(0, 1]"),
    "typo_field": ("presentation.symptom", "Extra inputs"),
    "old_pregnancy": ("epidemiology.age", "within 12-55"),
    "bad_age": ("epidemiology.age", "min <= peak <= max"),
    "few_wrong_steps": ("management.wrong_next_steps", "at least 3"),
    "no_sources": ("sources", "at least 1"),
    "workup_note": ("imaging.4.study", "workup note '(if troponin rises)'"),
    "bad_correlation": ("correlations.0.labs.0", "not a lab of this condition"),
    "leaky_phrasing": ("presentation.symptoms.0.phrasings.0", "names the diagnosis"),
    "long_right_option": ("management.next_best_step", "a length cue to the answer"),
}


def test_shipped_kb_is_valid_and_broad():
    kb = load_kb()
    assert len(kb.conditions) >= 80, f"only {len(kb.conditions)} conditions"
    assert len(kb.specialties()) >= 12, kb.specialties()
    assert all(len(c.differentials) >= 3 and c.sources for c in kb.conditions.values())


def test_every_shipped_condition_can_ask_treatment_and_mechanism_and_shows_no_workup_notes():
    kb = load_kb()
    missing = [cid for cid, c in kb.conditions.items() if not (c.mechanism and c.management.treatment)]
    assert not missing, missing
    assert len({c.mechanism for c in kb.conditions.values()}) == len(kb.conditions)  # a distractor is never the answer
    assert sum(len(c.correlations) for c in kb.conditions.values()) >= 15


def test_small_fixture_kb_is_valid():
    kb = load_kb([ASSETS / "kb_small"], include_shipped=False)
    assert {"preeclampsia", "benign_prostatic_hyperplasia", "croup"} <= set(kb.conditions)
    assert kb.version.startswith("1+")


def test_every_broken_fixture_has_an_expectation():
    assert {p.stem for p in BROKEN.glob("*/*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_broken_fixture_fails_naming_file_line_and_field(stem, tmp_path):
    src = next(BROKEN.glob(f"*/{stem}.yaml"))
    dst = tmp_path / src.parent.name / src.name
    dst.parent.mkdir()
    shutil.copy(src, dst)
    with pytest.raises(KBError) as exc:
        load_kb([tmp_path], include_shipped=False)
    field, words = EXPECTED[stem]
    problems = [str(p) for p in exc.value.problems]
    hits = [p for p in problems if f": {field}:" in p and words in p]
    assert hits, f"no problem naming {field!r} with {words!r} in {problems}"
    assert all(p.startswith(f"{dst}:") for p in hits)
    line = int(hits[0].split(":")[1])
    assert 1 < line <= len(dst.read_text().splitlines())


def test_line_number_points_at_the_bad_field(tmp_path):
    src = BROKEN / "cardiology" / "fahrenheit_temperature.yaml"
    dst = tmp_path / "cardiology" / src.name
    dst.parent.mkdir()
    shutil.copy(src, dst)
    with pytest.raises(KBError) as exc:
        load_kb([tmp_path], include_shipped=False)
    line = int(str(exc.value.problems[0]).split(":")[1])
    assert dst.read_text().splitlines()[line - 1].strip().startswith("temperature")


def test_user_kb_cannot_shadow_a_kb_id(tmp_path):
    for sub in ("a", "b"):
        d = tmp_path / sub / "cardiology"
        d.mkdir(parents=True)
        shutil.copy(ASSETS / "kb_small" / "cardiology" / "stable_angina.yaml", d)
    for stem in ("acute_myocardial_infarction", "aortic_dissection", "acute_pericarditis"):
        shutil.copy(ASSETS / "kb_small" / "cardiology" / f"{stem}.yaml", tmp_path / "a" / "cardiology")
    with pytest.raises(KBError, match="duplicate condition id 'stable_angina'"):
        load_kb([tmp_path / "a", tmp_path / "b"], include_shipped=False)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(KBError, match="knowledge-base folder not found"):
        load_kb([tmp_path / "nope"], include_shipped=False)
