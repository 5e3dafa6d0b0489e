"""The hand-written dev vignettes: found without a data root, cover the KB, balanced, never trained on."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from medtune.data.contamination import DEFAULT_BENCHMARKS, default_index
from medtune.data.pipeline import check_contamination
from medtune.data.records import Answer, Record
from medtune.eval.benchmarks import get_benchmark, load_benchmark_records, resolve_files
from medtune.synth.kb import load_kb
from medtune.utils.io import atomic_write_jsonl


@pytest.fixture(scope="module")
def items() -> list[Record]:
    return load_benchmark_records(get_benchmark("dev_vignettes"), data_root=None)


@pytest.fixture(scope="module")
def kb():
    return load_kb()


def _names(cond) -> set[str]:
    return {cond.name.lower(), *(a.lower() for a in cond.aliases)}


def test_ships_with_the_package_and_needs_no_data_root(items):
    spec = get_benchmark("dev_vignettes")
    assert spec.packaged and "medtune developers" in spec.provenance and "Apache-2.0" in spec.provenance
    (path,) = resolve_files(spec, data_root=None)
    assert path.is_file() and "resources" in path.parts and len(items) == spec.expected_items


def test_covers_the_knowledge_base_with_balanced_letters(items, kb):
    assert len(items) >= 60
    conditions = {r.metadata["condition_id"] for r in items}
    assert len(conditions) >= 40 and conditions <= set(kb.conditions)
    specialties = {r.metadata["specialty"] for r in items}
    assert len(specialties) >= 10
    letters = Counter(r.answer.letter for r in items)
    assert set(letters) == {"A", "B", "C", "D"} and max(letters.values()) - min(letters.values()) <= 1, letters
    for r in items:
        cond = kb.conditions[r.metadata["condition_id"]]
        assert r.metadata["specialty"] == cond.specialty, r.id
        assert len(r.options) in (4, 5) and len(set(map(str.lower, r.options.values()))) == len(r.options), r.id
        assert r.options[r.answer.letter] == r.answer.text, r.id
        assert r.answer.text.lower() in _names(cond), (r.id, r.answer.text)


def test_no_item_has_two_defensible_answers_or_names_its_answer(items, kb):
    for r in items:
        cond = kb.conditions[r.metadata["condition_id"]]
        wrong = [v.lower() for k, v in r.options.items() if k != r.answer.letter]
        assert not set(wrong) & _names(cond), (r.id, wrong)  # a distractor that is the answer's alias
        stem = r.question.rsplit("\n\n", 1)[0].lower()
        for name in _names(cond):
            if len(name) >= 4:
                assert not re.search(rf"\b{re.escape(name)}\b", stem), (r.id, name)


def test_the_contamination_check_keeps_dev_vignettes_out_of_training_sets(items, tmp_path, no_data_root):
    assert DEFAULT_BENCHMARKS[0] == "dev_vignettes"
    index, counts = default_index()  # no data root: the packaged dev vignettes are still indexed
    assert counts == {"dev_vignettes": len(items)}
    leaked = items[17]
    copied = Record.create(source="user", task="diagnosis", question=leaked.question.split("\n\n")[0],
                           answer=Answer(text=leaked.answer.text))
    unrelated = Record.create(source="user", task="diagnosis", answer=Answer(text="Scurvy"),
                              question="A sailor on a long voyage has bleeding gums and corkscrew hairs.")
    assert index.check(copied).flagged and not index.check(unrelated).flagged

    train = tmp_path / "train.jsonl"
    atomic_write_jsonl(train, (r.model_dump(mode="json") for r in (unrelated, copied)))
    (dev_file,) = resolve_files(get_benchmark("dev_vignettes"), None)
    report = check_contamination([train], [dev_file], drop_to=tmp_path / "clean.jsonl")
    assert report.flagged == 1 and report.hits[0].record_id == copied.id
    assert report.hits[0].benchmark_ids[0].endswith(leaked.id)
