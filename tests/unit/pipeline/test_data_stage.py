"""The data stage reads its sources through the data contract: medtune folders, files, hf: datasets, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medtune.config import ConfigError, load_config
from medtune.config.sections.data import DataSection, DataSource
from medtune.data.importers import DataError
from medtune.data.io import read_records
from medtune.data.pipeline import split_file
from medtune.pipeline.runner import preflight
from medtune.pipeline.stages.data import import_sources, resolve_source
from medtune.synth.run import run_synth

O1_ROWS = [{"Question": f"A patient with symptom {i}. What next?", "Complex_CoT": f"Think about {i}.",
            "Response": f"Do test {i}."} for i in range(6)]
QUIET = {"echo": lambda *_: None}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    run_synth(out, 6, seed=0, tasks=["mcq", "diagnosis"])
    return out


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_split_folder_gives_its_train_part_only(tmp_path, synth_dir):
    split = tmp_path / "split"
    split_file([synth_dir], split, val=0.3, test=0.2, seed=1)
    result = import_sources([DataSource(path=str(split))], DataSection(), tmp_path / "data", **QUIET)
    imported = [r.id for r in read_records(result.records)]
    assert imported == [r.id for r in read_records(split / "train.jsonl")]
    held_out = {r.id for name in ("val.jsonl", "test.jsonl") for r in read_records(split / name)}
    assert held_out and not held_out & set(imported)


def test_a_medtune_folder_implies_its_format_a_user_folder_does_not(tmp_path, synth_dir):
    assert resolve_source(DataSource(path=str(synth_dir))).format == "medtune"
    with pytest.raises(DataError, match="a medtune folder holds medtune records; drop format='reasonmed'"):
        resolve_source(DataSource(path=str(synth_dir), format="reasonmed"))
    # a folder of the user's own files (no manifest) is read with the importer it names
    user = tmp_path / "downloads"
    _jsonl(user / "part1.jsonl", O1_ROWS[:3])
    _jsonl(user / "part2.jsonl", O1_ROWS[3:])
    found = resolve_source(DataSource(path=str(user), format="medical_o1"))
    assert found.format == "medical_o1" and len(found.files) == 2
    result = import_sources([DataSource(path=str(user), format="medical_o1")], DataSection(), tmp_path / "data", **QUIET)
    assert result.count == 6 and result.quarantined == 0
    # a plain file that names the wrong importer is refused before anything is written
    with pytest.raises(DataError, match="do not match format 'medqa'"):
        import_sources([DataSource(path=str(user / "part1.jsonl"), format="medqa")], DataSection(), tmp_path / "bad", **QUIET)
    assert not (tmp_path / "bad").exists()


def test_an_hf_dataset_is_a_source(tmp_path):
    import datasets

    datasets.Dataset.from_list(O1_ROWS).save_to_disk(str(tmp_path / "o1"))
    sources = [DataSource(path=f"hf:{tmp_path / 'o1'}", format="medical_o1"),
               DataSource(path=str(_jsonl(tmp_path / "more.jsonl", O1_ROWS[:2])), cap=1)]
    result = import_sources(sources, DataSection(), tmp_path / "data", **QUIET)
    responses = sorted(r.response for r in read_records(result.records))
    assert result.count == 7 and responses.count("Do test 0.") + responses.count("Do test 1.") == 3


def test_preflight_names_each_bad_source(tmp_path, synth_dir):
    run = tmp_path / "train_run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"run_id": "r1", "base_model": "x"}))
    cfg = load_config(None, ["stages=[data]", f"data.sources=[{run}, {tmp_path / 'nope.jsonl'}, {synth_dir}]"])
    with pytest.raises(ConfigError) as exc:
        preflight(cfg, ["data"])
    problems = {p.path: p.message for p in exc.value.problems}
    assert set(problems) == {"data.sources.0", "data.sources.1"}
    assert "a training run (RUN/manifest.json), not records" in problems["data.sources.0"]
    assert "nope.jsonl: no such file" in problems["data.sources.1"]
