"""Every file in ../shared/data imports with its exact count and correct gold answers."""

from __future__ import annotations

import json

import pytest

from medtune.data.importers import IMPORTERS, Quarantine, detect_format, iter_records
from medtune.data.records import content_id

MMLU_COUNTS = {"anatomy": 135, "clinical_knowledge": 265, "college_biology": 144,
               "college_medicine": 173, "medical_genetics": 100, "professional_medicine": 272}


def _load(path, **options):
    q = Quarantine()
    stream = iter_records(path, quarantine=q, **options)
    records = list(stream)
    assert stream.seen == stream.accepted + stream.rejected == len(records) + q.count
    return records, q, stream


def test_medqa(shared_data):
    path = shared_data / "medqa" / "us_4options_test.jsonl"
    assert detect_format(path) == "medqa"
    records, q, _ = _load(path)
    assert len(records) == 1273 and q.count == 0
    first = records[0]
    assert first.answer.letter == "B"
    assert first.answer.text == "Tell the attending that he cannot fail to disclose this mistake"
    assert first.metadata["meta_info"] == "step1" and first.source == "medqa" and len(first.id) == 16
    assert len({r.id for r in records}) == 1273


def test_medmcqa_cop_is_one_based(shared_data):
    path = shared_data / "medmcqa" / "dev.jsonl"
    assert detect_format(path) == "medmcqa"
    records, q, stream = _load(path)
    assert len(records) == 4183 and q.count == 0
    by_id = {r.id: r for r in records}
    first = by_id["45258d3d-b974-44dd-a161-c3fccbdadd88"]  # cop 1 -> A
    assert first.answer.letter == "A" and first.answer.text.startswith("Impulse through myelinated fibers is slower")
    assert first.metadata["subject"] == "Physiology" and first.reasoning is None
    second = by_id["b944ada9-d776-4c2a-9180-3ae5f393f72d"]
    assert second.reasoning.startswith("Ans-a.") and second.answer.letter == "A"
    candid = by_id["e38402c3-69bf-40a8-90c4-09277ca352eb"]  # cop 4 -> D
    assert candid.answer.letter == "D" and candid.answer.text == "Candidiasis"
    assert stream.flagged == 21  # duplicate option texts are flagged, not dropped (official count kept)


def test_medmcqa_duplicate_options_can_be_rejected(shared_data):
    records, q, _ = _load(shared_data / "medmcqa" / "dev.jsonl", duplicate_options="reject")
    assert len(records) == 4162 and q.count == 21
    assert q.entries[0].line == 45 and q.entries[0].field == "options"


def test_pubmedqa_and_test_ids(shared_data):
    path = shared_data / "pubmedqa" / "ori_pqal.json"
    ids = shared_data / "pubmedqa" / "test_ground_truth.json"
    records, q, _ = _load(path)
    assert len(records) == 1000 and q.count == 0
    rec = next(r for r in records if r.id == "21645374")
    assert rec.options == {"A": "yes", "B": "no", "C": "maybe"}
    assert (rec.answer.letter, rec.answer.text) == ("A", "yes")
    assert rec.context.startswith("Programmed cell death (PCD)") and rec.response.startswith("Results depicted")
    assert rec.metadata["year"] == "2011" and "Apoptosis" in rec.metadata["meshes"]
    assert next(r for r in records if r.id == "26037986").answer.letter == "C"  # maybe
    gold = json.loads(ids.read_text())
    test, _, _ = _load(path, ids_file=ids)
    assert len(test) == 500 and {r.id for r in test} == set(gold)
    assert all(r.answer.text == gold[r.id] for r in test)
    rest, _, _ = _load(path, exclude_ids_file=ids)
    assert len(rest) == 500 and not {r.id for r in rest} & set(gold)


def test_mmlu_medical(shared_data):
    total = 0
    for subject, expected in MMLU_COUNTS.items():
        path = shared_data / "mmlu_medical" / f"{subject}_test.csv"
        assert detect_format(path) == "mmlu"
        records, q, _ = _load(path)
        assert len(records) == expected and q.count == 0
        assert {r.metadata["subject"] for r in records} == {subject}
        total += len(records)
    assert total == 1089
    anatomy, _, _ = _load(shared_data / "mmlu_medical" / "anatomy_test.csv")
    assert anatomy[1].question == 'A "dished face" profile is often associated with'  # quoted CSV cell
    assert anatomy[1].answer.letter == "B" and anatomy[1].answer.text.startswith("a recessive maxilla")
    pro, _, _ = _load(shared_data / "mmlu_medical" / "professional_medicine_test.csv")
    assert pro[0].answer.letter == "C" and pro[0].answer.text == "Compression of the lateral femoral cutaneous nerve"


def test_mmlu_question_in_two_subjects_is_two_items_with_stable_ids(shared_data):
    """MMLU asks 78 clinical_knowledge questions again in college_medicine: two items (two subject
    lines in the prompt, as the harness scores them), so two ids; and the same ids on every load."""
    def load(subject):
        return _load(shared_data / "mmlu_medical" / f"{subject}_test.csv")[0]

    ck, cm = load("clinical_knowledge"), load("college_medicine")
    shared = {content_id(r.question, r.context, r.options) for r in ck} & {content_id(r.question, r.context, r.options) for r in cm}
    assert len(shared) == 78  # same question and options
    ids = [r.id for r in ck + cm]
    assert len(set(ids)) == len(ids) == 265 + 173
    assert all(r.id.startswith("clinical_knowledge/") for r in ck) and all(r.id.startswith("college_medicine/") for r in cm)
    assert [r.id for r in load("clinical_knowledge")] == [r.id for r in ck]


def test_registry_names():
    assert {"medical_o1", "reasonmed", "reasoning", "messages", "medqa", "medmcqa", "pubmedqa", "mmlu",
            "medtune"} <= set(IMPORTERS)
    assert all(imp.name == name and imp.description for name, imp in IMPORTERS.items())


@pytest.mark.parametrize("fmt", ["medqa", "mmlu"])
def test_explicit_wrong_format_quarantines_every_row(shared_data, fmt):
    """Forcing the wrong importer rejects rows with a named field instead of importing garbage."""
    path = shared_data / "medmcqa" / "dev.jsonl"
    q = Quarantine()
    stream = iter_records(path, fmt, quarantine=q)
    assert list(stream) == [] and q.count == 4183
