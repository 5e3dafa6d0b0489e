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


def _with_a_leaked_vignette(path: Path) -> tuple[Path, str]:
    """Six training rows of the user's own, and one that copies a packaged dev vignette's stem."""
    from medtune.eval.benchmarks import get_benchmark, load_benchmark_records

    leaked = load_benchmark_records(get_benchmark("dev_vignettes"))[5]
    rows = [*O1_ROWS, {"Question": leaked.question.split("\n\n")[0], "Complex_CoT": "Copied.", "Response": leaked.answer.text}]
    return _jsonl(path, rows), leaked.id


def test_the_data_stage_drops_benchmark_items_and_says_so(tmp_path, no_data_root):
    from medtune.pipeline import DataOutput, StageError, run_pipeline

    source, leaked_id = _with_a_leaked_vignette(tmp_path / "train.jsonl")
    base = ["stages=[data]", f"data.sources=[{source}]", f"run_dir={tmp_path / 'run'}"]
    lines: list[str] = []
    result = run_pipeline(load_config(None, base), echo=lines.append, progress=False).get(DataOutput)
    check = result.contamination
    assert (check.mode, check.checked, check.flagged, check.dropped, result.count) == ("drop", 7, 1, 1, 6)
    assert check.benchmarks == {"dev_vignettes": 88} and "no file matches" in check.not_checked["medqa"]
    kept = list(read_records(result.records))
    assert len(kept) == 6 and all(r.question.startswith("A patient with symptom") for r in kept)
    report = json.loads(check.report.read_text())
    assert report["hits"][0]["benchmark_ids"][0] == f"dev_vignettes:{leaked_id}"
    stage = json.loads((tmp_path / "run" / "stages" / "data.json").read_text())
    assert stage["result"]["contamination"]["dropped"] == 1  # in the stage manifest
    folder = json.loads((result.folder / "manifest.json").read_text())
    assert folder["contamination"]["dropped"] == 1 and folder["outputs"][0]["records"] == 6
    assert any(line.startswith("contamination: 1 of 7 records overlap benchmark items, 1 dropped") for line in lines)

    with pytest.raises(StageError, match="1 of 7 imported records overlap benchmark items .*data.contamination=drop"):
        run_pipeline(load_config(None, [*base, "data.contamination=refuse"]), echo=lambda _: None, progress=False)
    off = run_pipeline(load_config(None, [*base, "data.contamination=off"]), echo=lambda _: None, progress=False)
    assert off.get(DataOutput).count == 7 and off.get(DataOutput).contamination is None


def test_eval_benchmarks_join_the_check_and_rerun_it(tmp_path):
    """A record file the run evaluates on is a benchmark too: adding it re-runs the data stage, which drops its items."""
    from medtune.pipeline import DataOutput, run_pipeline

    source = _jsonl(tmp_path / "train.jsonl", O1_ROWS)
    bench = _jsonl(tmp_path / "bench.jsonl", O1_ROWS[:2])
    base = ["stages=[data]", f"data.sources=[{source}]", f"run_dir={tmp_path / 'run'}"]
    first = run_pipeline(load_config(None, base), echo=lambda _: None, progress=False)
    assert first.get(DataOutput).count == 6
    lines: list[str] = []
    again = run_pipeline(load_config(None, [*base, f"eval.benchmarks=[{bench}]"]), echo=lines.append, progress=False)
    assert again.outcomes[0].action == "ran" and "new input contamination benchmark bench file 0" in again.outcomes[0].reason
    assert again.get(DataOutput).count == 4 and again.get(DataOutput).contamination.benchmarks["bench"] == 2


def test_data_import_with_a_config_checks_as_the_stage_does(tmp_path):
    from typer.testing import CliRunner

    from medtune.cli.main import app

    source, _ = _with_a_leaked_vignette(tmp_path / "train.jsonl")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"name: t\nrun_dir: {tmp_path / 'run'}\ndata:\n  sources: [{source}]\n")
    r = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["data", "import", "-c", str(cfg)])
    assert r.exit_code == 0, r.output
    assert "1 of 7 records overlap benchmark items, 1 dropped" in r.output
    assert len(list(read_records(tmp_path / "run" / "data" / "records.jsonl"))) == 6
    cfg.write_text(cfg.read_text() + "  contamination: off\n")  # YAML's bare `off` is false: it still means off
    r = CliRunner().invoke(app, ["data", "import", "-c", str(cfg), "--out", str(tmp_path / "unchecked")])
    assert r.exit_code == 0, r.output
    assert len(list(read_records(tmp_path / "unchecked" / "records.jsonl"))) == 7


def test_a_data_stage_setting_that_leaves_the_records_as_they_were_does_not_train_again(tmp_path, tiny_model_dir):
    from medtune.pipeline import run_pipeline

    source = _jsonl(tmp_path / "train.jsonl", O1_ROWS * 2)
    base = [f"model.base={tiny_model_dir}", "stages=[data,train]", f"data.sources=[{source}]", "train.max_steps=1",
            "train.save_steps=0", "data.max_length=512", f"run_dir={tmp_path / 'run'}"]
    run_pipeline(load_config(None, base), echo=lambda _: None, progress=False)
    again = run_pipeline(load_config(None, [*base, "data.contamination=refuse", "data.dedupe_threshold=0.9"]),
                         echo=lambda _: None, progress=False)
    assert {o.stage: o.action for o in again.outcomes} == {"data": "ran", "train": "skipped"}
    third = run_pipeline(load_config(None, [*base, "data.max_length=256"]), echo=lambda _: None, progress=False)
    assert {o.stage: o.action for o in third.outcomes} == {"data": "ran", "train": "ran"}  # the trainer's own field
    assert "data.max_length 512 -> 256" in third.outcomes[1].reason


def _pubmedqa(path: Path, n: int) -> dict[str, dict]:
    items = {str(1000 + i): {"QUESTION": f"Does drug {i} lower the risk of outcome {i} in adults with condition {i}?",
                             "CONTEXTS": [f"We studied {100 + i} patients with condition {i} given drug {i} for a year."],
                             "final_decision": "yes", "LONG_ANSWER": f"Drug {i} lowered the risk."} for i in range(n)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(items))
    return items


def test_importer_option_files_and_benchmark_id_files_are_data_stage_inputs(tmp_path, monkeypatch):
    """What an importer option file (exclude_ids_file) or PubMedQA's test ids hold decides the records: a changed
    file re-runs the data stage, with the default data root ($MEDTUNE_DATA_ROOT) as with eval.data_root."""
    from medtune.pipeline import DataOutput, run_pipeline

    root = tmp_path / "bench"
    ids = list(_pubmedqa(root / "pubmedqa" / "ori_pqal.json", 6))
    test_ids = root / "pubmedqa" / "test_ground_truth.json"
    test_ids.write_text(json.dumps({k: "yes" for k in ids[:2]}))
    monkeypatch.setenv("MEDTUNE_DATA_ROOT", str(root))
    exclude = tmp_path / "exclude.json"
    exclude.write_text(json.dumps(ids[:1]))
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"name: t\nrun_dir: {tmp_path / 'run'}\nstages: [data]\ndata:\n  sources:\n"
                   f"    - {{path: {root / 'pubmedqa' / 'ori_pqal.json'}, format: pubmedqa, "
                   f"options: {{exclude_ids_file: {exclude}}}}}\n")

    def run():
        result = run_pipeline(load_config(cfg), echo=lambda _: None, progress=False)
        records = [r.id for r in read_records(result.get(DataOutput).records)]
        return result.outcomes[0], records

    first, records = run()
    assert records == ids[2:]  # 1000 excluded by the option, 1001 dropped as a PubMedQA test item
    exclude.write_text(json.dumps(ids[:3]))
    again, records = run()
    assert again.action == "ran" and "source 0 option exclude_ids_file" in again.reason
    assert records == ids[3:]
    test_ids.write_text(json.dumps({k: "yes" for k in [*ids[:2], ids[3]]}))
    third, records = run()
    assert third.action == "ran" and "contamination benchmark pubmedqa file 1" in third.reason
    assert records == ids[4:]
    assert run()[0].action == "skipped"
