"""Stable splits, weighted/capped mixing with a manifest, dedupe clusters."""

from __future__ import annotations

import json

from medtune.data.dedupe import DedupeReport, dedupe_records
from medtune.data.importers import iter_records
from medtune.data.io import read_records, write_records
from medtune.data.mix import MixSource, mix_datasets
from medtune.data.pipeline import mix_files, split_file
from medtune.data.records import Answer, Record
from medtune.utils.io import sha256_file


def _records(n, source="s", start=0, subject=None):
    return [Record.create(source=source, task="open", question=f"Question number {i} about {source}?",
                          answer=Answer(text=f"answer {i}"), metadata={"subject": subject} if subject else {})
            for i in range(start, start + n)]


def _split_map(out):
    return {r.id: name for name in ("train", "val", "test") if (out / f"{name}.jsonl").exists()
            for r in read_records(out / f"{name}.jsonl")}


def test_split_is_stable_when_the_dataset_grows(tmp_path):
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    write_records(small, _records(2000))
    write_records(big, list(reversed(_records(2000) + _records(1000, start=2000))))  # grown and reordered
    s1 = split_file([small], tmp_path / "s1", val=0.1, test=0.1, seed=3)
    split_file([big], tmp_path / "s2", val=0.1, test=0.1, seed=3)
    first, second = _split_map(tmp_path / "s1"), _split_map(tmp_path / "s2")
    assert all(second[k] == v for k, v in first.items())
    assert sum(s1["counts"].values()) == 2000 and 150 < s1["counts"]["val"] < 250 and 150 < s1["counts"]["test"] < 250
    other = split_file([small], tmp_path / "s3", val=0.1, test=0.1, seed=4)
    assert _split_map(tmp_path / "s3") != first and sum(other["counts"].values()) == 2000
    manifest = json.loads((tmp_path / "s1" / "manifest.json").read_text())
    assert manifest["options"]["seed"] == 3 and manifest["inputs"][0]["sha256"] == sha256_file(small)


def test_split_strata_and_duplicates(tmp_path):
    path = tmp_path / "mixed.jsonl"
    recs = _records(1500, "a", subject="cardiology") + _records(500, "b", subject="neurology")
    dup = recs[0].model_copy(update={"id": "other-id", "source": "b"})  # same content, other source
    write_records(path, recs + [dup])
    summary = split_file([path], tmp_path / "out", val=0.2, stratify="subject")
    for name in ("cardiology", "neurology"):
        assert abs(summary["by_stratum"][name]["val_share"] - 0.2) < 0.05
    split_of = _split_map(tmp_path / "out")
    assert split_of["other-id"] == split_of[recs[0].id]  # duplicates cannot leak across splits


def test_mix_weights_caps_and_manifest(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_records(a, _records(100, "a"))
    write_records(b, _records(30, "b"))
    summary = mix_files([MixSource(str(a), weight=3), MixSource(str(b), weight=1)], tmp_path / "m", total=80)
    out = list(read_records(tmp_path / "m" / "records.jsonl"))
    assert [s["taken"] for s in summary["sources"]] == [60, 20] and len(out) == 80
    assert sorted({r.source for r in out[:20]}) == ["a", "b"]  # shuffled, not concatenated
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert [i["sha256"] for i in manifest["inputs"]] == [sha256_file(a), sha256_file(b)]
    assert manifest["outputs"][0]["records"] == 80 and manifest["options"] == {"total": 80, "seed": 0}
    # upsampling past the source size repeats whole passes; caps bound it
    records, entries = mix_datasets([MixSource(str(b), weight=2.5), MixSource(str(a), cap=7)])
    got = list(records)
    assert [e["taken"] for e in entries] == [75, 7] and entries[0]["repeated"] and len(got) == 82
    again, _ = mix_datasets([MixSource(str(b), weight=2.5), MixSource(str(a), cap=7)])
    assert [r.id for r in again] == [r.id for r in got]  # deterministic


def test_dedupe_on_real_medmcqa(shared_data):
    report = DedupeReport()
    kept = list(dedupe_records(iter_records(shared_data / "medmcqa" / "dev.jsonl"), report, threshold=0.8))
    assert report.seen == 4183 == len(kept) + report.exact_removed + report.near_removed
    assert report.near_removed > 0
    clusters = report.to_dict()["clusters"]
    assert len(clusters) > 0 and all(c["near"] or c["exact"] for c in clusters)
    by_id = {r.id: r for r in iter_records(shared_data / "medmcqa" / "dev.jsonl")}
    c = clusters[0]
    removed = by_id[(c["near"] + c["exact"])[0]]
    assert removed.question[:30].lower() == by_id[c["kept"]].question[:30].lower() or \
        set(removed.options.values()) & set(by_id[c["kept"]].options.values())
    stricter = DedupeReport()
    list(dedupe_records(iter_records(shared_data / "medmcqa" / "dev.jsonl"), stricter, threshold=0.95))
    assert stricter.near_removed < report.near_removed  # the threshold is a real knob


def test_a_synthetic_case_and_its_twins_stay_on_one_side(tmp_path):
    """A case's diagnosis and MCQ records (and its demographic twins) share a vignette: one side for all of them."""
    from medtune.synth.run import run_synth

    run_synth(tmp_path / "syn", n=150, seed=0, tasks=["diagnosis", "mcq"], bias_variants=True)
    split_file([tmp_path / "syn" / "records.jsonl"], tmp_path / "out", val=0.2, test=0.1, seed=0)
    sides: dict[str, set[str]] = {}
    for name in ("train", "val", "test"):
        for r in read_records(tmp_path / "out" / f"{name}.jsonl"):
            sides.setdefault(r.metadata["case_id"], set()).add(name)
    assert len(sides) == 150
    assert all(len(s) == 1 for s in sides.values()), {k: s for k, s in sides.items() if len(s) > 1}
    assert {"train", "val", "test"} == set().union(*sides.values())
