"""The data contract: every medtune data folder, records files and hf: datasets resolve; anything else is a clear error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.data.contract import resolve_records, source_files
from medtune.data.importers import DataError, iter_records
from medtune.data.io import read_records
from medtune.data.mix import MixSource
from medtune.data.pipeline import import_files, mix_files, split_file
from medtune.synth.run import run_synth

O1_ROWS = [{"Question": f"A patient with symptom {i}. What next?", "Complex_CoT": f"Think about {i}.",
            "Response": f"Do test {i}."} for i in range(6)]


def _o1_file(path: Path) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in O1_ROWS) + "\n")
    return path


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    run_synth(out, 6, seed=0, tasks=["mcq", "diagnosis"])
    return out


def test_synth_folder_resolves_to_its_records_not_its_cases(synth_dir):
    manifest = json.loads((synth_dir / "manifest.json").read_text())
    assert manifest["kind"] == "synth" and manifest["records"] == "records.jsonl"
    src = resolve_records(synth_dir)
    assert src.kind == "synth" and [Path(f).name for f in src.files] == ["records.jsonl"] and src.format == "medtune"
    # a folder from before manifests named their records: the known layout (records.jsonl beside cases.jsonl)
    legacy = synth_dir.parent / "legacy_synth"
    legacy.mkdir()
    for name in ("records.jsonl", "cases.jsonl", "stats.json"):
        (legacy / name).write_bytes((synth_dir / name).read_bytes())
    assert resolve_records(legacy).kind == "synth"


def test_import_split_and_mix_folders_name_their_records(tmp_path, synth_dir):
    imported = tmp_path / "imp"
    import_files([_o1_file(tmp_path / "o1.jsonl")], imported)
    src = resolve_records(imported)
    assert src.kind == "import" and Path(src.files[0]).name == "records.jsonl" and src.format == "medtune"

    split = tmp_path / "split"
    split_file([synth_dir], split, val=0.3, test=0.2, seed=1)  # a synth folder is a source too
    assert json.loads((split / "manifest.json").read_text())["records"] == {
        "train": "train.jsonl", "val": "val.jsonl", "test": "test.jsonl"}
    train = resolve_records(split)
    assert [Path(f).name for f in train.files] == ["train.jsonl"] and [Path(f).name for f in train.val_files] == ["val.jsonl"]
    assert [Path(f).name for f in resolve_records(split, role="eval").files] == ["test.jsonl"]
    (split / "manifest.json").unlink()  # old split folders: train.jsonl (+ val.jsonl) by layout
    assert resolve_records(split).kind == "split"

    mixed = tmp_path / "mix"
    mix_files([MixSource(str(imported)), MixSource(str(synth_dir), cap=3)], mixed, seed=0)
    assert len(list(read_records(resolve_records(mixed).files[0]))) == 6 + 3


def test_data_import_of_a_split_folder_takes_its_train_part_as_the_data_stage_does(tmp_path, synth_dir):
    """One rule for a source's training files: `data import SPLIT` (and split, stats, contamination) read train.jsonl
    only, like the data stage; the val part is held out. `data validate` still checks every file."""
    from medtune.config.sections.data import DataSection, DataSource
    from medtune.data.pipeline import validate_files
    from medtune.pipeline.stages.data import import_sources

    split = tmp_path / "split"
    split_file([synth_dir], split, val=0.3, test=0.2, seed=1)
    train, val = ([r.id for r in read_records(split / f"{name}.jsonl")] for name in ("train", "val"))
    assert train and val
    summary = import_files([split], tmp_path / "imp")
    imported = [r.id for r in read_records(tmp_path / "imp" / "records.jsonl")]
    assert summary["written"] == len(train) and imported == train and not set(val) & set(imported)
    assert source_files([split]) == [str(split / "train.jsonl")]
    stage = import_sources([DataSource(path=str(split))], DataSection(), tmp_path / "stage", echo=lambda *_: None)
    assert [r.id for r in read_records(stage.records)] == imported
    resplit = split_file([split], tmp_path / "resplit", val=0.3, seed=2)  # a held-out item never lands in a train part
    assert sum(resplit["counts"].values()) == len(train)
    checked, _ = validate_files([split])
    assert sorted(Path(f).name for f in checked) == ["train.jsonl", "val.jsonl"]


def test_a_folder_of_record_files_reads_each_and_refuses_one_it_cannot_read(tmp_path, synth_dir):
    folder = tmp_path / "sources"
    folder.mkdir()
    _o1_file(folder / "o1.jsonl")
    (folder / "synth.jsonl").write_bytes((synth_dir / "records.jsonl").read_bytes())
    (folder / "README.md").write_text("notes")
    src = resolve_records(folder)
    assert [Path(f).name for f in src.files] == ["o1.jsonl", "synth.jsonl"] and src.format == "auto"
    assert len(list(iter_records(src.files[0]))) == 6
    (folder / "predictions.jsonl").write_text(json.dumps({"id": "q1", "protocol": "loglik", "pred": "A"}) + "\n")
    with pytest.raises(DataError, match="sources: not a records folder: .*predictions.jsonl: cannot detect the format"):
        resolve_records(folder)


def test_explicit_format_that_does_not_match_is_refused_up_front(tmp_path, synth_dir):
    """configs/reasonmed-lora-1b.yaml's bug: imported medtune records read with format reasonmed."""
    with pytest.raises(DataError, match=r"do not match format 'reasonmed'.*look like format 'medtune'"):
        resolve_records(synth_dir, "reasonmed")


@pytest.mark.parametrize("make, message", [
    (lambda d: d, "it is empty"),
    (lambda d: [(d / n).write_text("x") for n in ("notes.txt", "plot.png")] and d, "it holds notes.txt, plot.png"),
    (lambda d: (d / "manifest.json").write_text(json.dumps({"run_id": "r1", "base_model": "m"})) and d, "a training run"),
    (lambda d: (d / "weights.bin").write_bytes(os.urandom(512)) and d / "weights.bin", "not a records file"),
    (lambda d: (d / "junk.jsonl").write_bytes(b"\xff\xfe" + os.urandom(300)) and d / "junk.jsonl", "no parseable rows"),
    (lambda d: d / "missing.jsonl", "no such file or folder"),
    (lambda d: (d / "manifest.json").write_text(json.dumps({"kind": "import", "records": "gone.jsonl"})) and d,
     "names \\['gone.jsonl'\\], which is missing"),
])
def test_anything_else_is_an_error_naming_the_path(tmp_path, make, message):
    target = make(tmp_path)
    with pytest.raises(DataError, match=message) as e:
        resolve_records(target)
    assert str(target) in str(e.value) and "\n" not in str(e.value)


def test_data_commands_take_folders_and_refuse_junk(tmp_path, synth_dir):
    runner = CliRunner()
    ok = runner.invoke(app, ["data", "import", str(synth_dir), "--out", str(tmp_path / "re")])
    assert ok.exit_code == 0, ok.output
    assert len(list(read_records(tmp_path / "re" / "records.jsonl"))) == 12
    (tmp_path / "empty").mkdir()
    bad = runner.invoke(app, ["data", "split", str(tmp_path / "empty"), "--out", str(tmp_path / "s")])
    assert bad.exit_code == 2 and "not a records folder" in bad.output and not (tmp_path / "s").exists()


# --- Hugging Face datasets (local only: save_to_disk, a repository clone, the hub cache offline) -----------------

def test_hf_saved_dataset_goes_through_the_importers(tmp_path):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(O1_ROWS[:4]),
                          "test": datasets.Dataset.from_list(O1_ROWS[4:])}).save_to_disk(str(tmp_path / "o1"))
    spec = f"hf:{tmp_path / 'o1'}"
    src = resolve_records(spec)
    assert src.kind == "hf" and src.format == "medical_o1"
    assert [r.response for r in iter_records(f"{spec}@test")] == ["Do test 4.", "Do test 5."]
    summary = import_files([spec], tmp_path / "imp")
    assert summary["written"] == 4
    manifest = json.loads((tmp_path / "imp" / "manifest.json").read_text())
    assert manifest["inputs"][0]["path"] == spec and manifest["inputs"][0]["dataset_fingerprint"]
    with pytest.raises(DataError, match="split 'validation' not in the saved dataset"):
        resolve_records(f"{spec}@validation")


def test_hf_repository_clone_with_config_folder(tmp_path):
    repo = tmp_path / "medical-o1-reasoning-SFT"
    repo.mkdir()
    _o1_file(repo / "medical_o1_sft.json")
    assert len(list(iter_records(f"hf:{repo}@train[:2]"))) == 2
    assert source_files([f"hf:{repo}"]) == [f"hf:{repo}"]


def _hub_cache(cache: Path, tmp_path: Path) -> None:
    """The layout `datasets.load_dataset("FreedomIntelligence/medical-o1-reasoning-SFT", "en")` leaves in its cache."""
    from datasets.packaged_modules.json.json import Json

    builder = Json(cache_dir=str(cache), dataset_name="medical-o1-reasoning-SFT", config_name="en", hash="0123abcd",
                   data_files={"train": [str(_o1_file(tmp_path / "o1.jsonl"))]})
    builder.download_and_prepare()
    built = next((cache / "medical-o1-reasoning-sft").iterdir())
    built.rename(cache / "medical-o1-reasoning-sft" / "en")
    (cache / "medical-o1-reasoning-sft").rename(cache / "FreedomIntelligence___medical-o1-reasoning-sft")


def test_hf_hub_id_loads_from_the_local_cache_offline(tmp_path, monkeypatch):
    import datasets

    cache = tmp_path / "hf_cache"
    _hub_cache(cache, tmp_path)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = "hf:FreedomIntelligence/medical-o1-reasoning-SFT:en"
    src = resolve_records(spec)
    assert src.format == "medical_o1"
    assert [r.question for r in iter_records(spec)] == [r["Question"] for r in O1_ROWS]
    # not cached and offline: fails fast and says what to do
    with pytest.raises(DataError, match="not in the local Hugging Face cache.*save_to_disk"):
        resolve_records("hf:nobody/not-cached")


@pytest.mark.parametrize("spec, message", [("hf:", "expected hf:ID"), ("hf:justaname", "owner/name")])
def test_malformed_hf_specs(spec, message):
    with pytest.raises(DataError, match=message):
        resolve_records(spec)
