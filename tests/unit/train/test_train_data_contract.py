"""Training takes a synth, import or split folder (or hf:) as data; a wrong one fails before the model loads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.config import ConfigError, load_config
from medtune.data.pipeline import import_files, split_file
from medtune.synth.run import run_synth
from medtune.train import train

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))
from train_helpers import write_records  # noqa: E402

TINY = ["data.max_length=256", "train.batch_size=2", "train.lora.r=4", "train.lora.alpha=8", "train.max_steps=2",
        "train.eval_steps=0", "train.save_steps=0"]


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    run_synth(out, 8, seed=0, specialties=["cardiology"], tasks=["mcq"])
    return out


@pytest.fixture()
def no_model_load(monkeypatch):
    """Fail the test if the trainer reaches model loading."""
    import medtune.models.load

    calls = []
    monkeypatch.setattr(medtune.models.load, "load_model", lambda *a, **k: calls.append(a) or pytest.fail("model loaded"))
    return calls


def test_cli_trains_on_a_synth_folder(tmp_path, tiny_model_dir, synth_dir):
    """`medtune synth --out D && medtune train --data D` (the issue's first report)."""
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--data", str(synth_dir), "--out", str(out), "--quiet",
                                      f"model.base={tiny_model_dir}", *TINY, "data.max_length=1000"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [Path(f).name for f in manifest["data_files"]] == ["records.jsonl"] and manifest["steps"] == 2
    assert manifest["examples"]["train"] + manifest["examples"]["val"] == 8


def test_import_and_split_folders_train(tmp_path, tiny_model_dir):
    records = write_records(tmp_path / "records.jsonl", n=16)
    import_files([records], tmp_path / "imported")
    split_file([records], tmp_path / "split", val=0.25, seed=0)
    cfg = load_config(None, [f"model.base={tiny_model_dir}", *TINY])
    imported = train(cfg, tmp_path / "imported", tmp_path / "run_imp", progress=False)
    assert imported.manifest["examples"]["train"] + imported.manifest["examples"]["val"] == 16
    split = train(cfg, tmp_path / "split", tmp_path / "run_split", progress=False)
    val_rows = (tmp_path / "split" / "val.jsonl").read_text().splitlines()
    # the split folder's val.jsonl is the validation set (not a second hash split of train.jsonl)
    assert split.manifest["examples"]["val"] == len(val_rows) > 0
    assert {Path(f).name for f in split.manifest["data_files"]} == {"train.jsonl", "val.jsonl"}


@pytest.mark.parametrize("make, message", [
    (lambda d: (d / "stray.txt").write_text("hi") and d, "not a records folder"),
    (lambda d: (d / "manifest.json").write_text('{"run_id": "x"}') and d, "a training run"),
    (lambda d: (d / "a.safetensors").write_bytes(b"\0" * 64) and d / "a.safetensors", "not a records file"),
])
def test_wrong_data_fails_before_the_model_loads(tmp_path, tiny_model_dir, no_model_load, make, message):
    target = make(tmp_path)
    cfg = load_config(None, [f"model.base={tiny_model_dir}", *TINY])
    with pytest.raises(ConfigError, match=message) as e:
        train(cfg, target, tmp_path / "run", progress=False)
    assert str(target) in str(e.value) and not no_model_load


def test_records_that_all_fail_import_stop_before_the_model(tmp_path, tiny_model_dir, no_model_load):
    records = write_records(tmp_path / "records.jsonl", n=4)
    cfg = load_config(None, [f"model.base={tiny_model_dir}", "data.format=medqa", *TINY])
    with pytest.raises(ConfigError, match="do not match format 'medqa'.*look like format 'medtune'"):
        train(cfg, records, tmp_path / "run", progress=False)


def test_cli_exits_2_with_the_reason_and_no_traceback(tmp_path, tiny_model_dir, no_model_load, monkeypatch, capsys):
    from medtune.cli.main import main

    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(sys, "argv", ["medtune", "train", "--data", str(tmp_path / "empty"), f"model.base={tiny_model_dir}"])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert f"{tmp_path / 'empty'}: not a records folder (it is empty); expected a records file" in err


def test_a_small_set_whose_draw_holds_nothing_out_still_gets_a_validation_case(tmp_path):
    """val_fraction 0.01 over 20 cases usually draws none: the lowest draw (a whole case) is held out, so eval
    loss is measured, and a case never straddles the sides."""
    from medtune.data.split import split_position
    from medtune.train.data import load_training_records

    run_synth(tmp_path / "syn", n=20, seed=0, tasks=["diagnosis", "mcq"])
    cfg = load_config(None, [f"data.train_files=[{tmp_path / 'syn'}]", "data.val_fraction=0.01"])
    got = load_training_records(cfg.data)
    assert got.val and {r.metadata["case_id"] for r in got.val} == {got.val[0].metadata["case_id"]}
    assert len(got.val) == 2 and not {r.metadata["case_id"] for r in got.val} & {r.metadata["case_id"] for r in got.train}
    lowest = min(got.train + got.val, key=lambda r: split_position(r, 0))
    assert lowest.metadata["case_id"] == got.val[0].metadata["case_id"]


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_a_run_refused_before_it_writes_anything_leaves_no_folder(tmp_path, stage):
    """A wrong --data fails before the model loads; the run folder it had created is removed with the parents it
    created, not left empty (a second stage writes its resolved config first: that alone does not keep it). An
    existing folder stays."""
    for out in (tmp_path / "new" / "deeper" / "run", tmp_path / "existing"):
        if out.name == "existing":
            out.mkdir()
        result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "missing.jsonl"), "--out", str(out), "--quiet",
                                          f"train.stage={stage}"])
        assert result.exit_code == 2 and "no such file or folder" in result.output, result.output
        assert out.is_dir() == (out.name == "existing")
    assert not (tmp_path / "new").exists()
