"""Every shipped recipe runs its whole chain through `medtune run` on the tiny model, and every launch
command in its header runs as typed (with the tiny overrides appended); see recipe_helpers for what changes."""

from __future__ import annotations

import json

import pytest
from recipe_helpers import RECIPES, launch_commands, run_literally, tiny_overrides, write_fixtures

from medtune.config import load_config
from medtune.pipeline import (
    DataOutput,
    EvalOutput,
    ExportOutput,
    ServeOutput,
    TrainOutput,
    run_pipeline,
)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return write_fixtures(tmp_path_factory.mktemp("fixtures"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_runs_end_to_end(recipe, tmp_path, tiny_model_dir, fixtures, shared_data, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths of the recipe (runs/<name>) land here
    cfg = load_config(recipe)
    overrides = tiny_overrides(cfg, tiny_model_dir, fixtures, shared_data)
    lines: list[str] = []
    result = run_pipeline(load_config(recipe, overrides), echo=lines.append, progress=False)

    assert [o.stage for o in result.outcomes] == cfg.stages and {o.action for o in result.outcomes} == {"ran"}
    data, train = result.get(DataOutput), result.get(TrainOutput)
    assert data.count > 0 and data.records.is_file()
    manifest = json.loads((train.run_dir / "manifest.json").read_text())
    assert manifest["steps"] == 3 and manifest["examples"]["train"] > 0
    assert (train.run_dir / "checkpoints").is_dir()  # recipes save checkpoints (here every 2 steps)
    ev = result.get(EvalOutput)
    names = list(cfg.eval.benchmarks) + (["heldout"] if cfg.synth.heldout_cases and "synth" in cfg.stages else [])
    runs = [(n, p) for n in names for p in cfg.eval.protocols_for(n)]  # eval.protocols: one result per protocol
    assert [(s.name, s.protocol) for s in ev.scores] == [(cfg.eval.result_name(n, p), p) for n, p in runs]
    assert all(s.n >= 1 and s.summary.is_file() for s in ev.scores)
    assert all((s.base_accuracy is not None) == cfg.eval.compare_base for s in ev.scores)
    ex = result.get(ExportOutput)
    assert sorted(ex.files) == sorted(cfg.export.gguf) and all(p.stat().st_size > 0 for p in ex.files.values())
    serve = result.get(ServeOutput)
    assert serve.model in ex.files.values() and serve.command[:3] == ["medtune", "serve", str(serve.model)]
    stage_manifests = {p.stem for p in (result.run_dir / "stages").glob("*.json")} - {"fingerprints"}
    assert stage_manifests == set(cfg.stages)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_header_launch_commands_work_as_typed(recipe, tmp_path, tiny_model_dir, fixtures, shared_data):
    groups = launch_commands(recipe)
    assert groups and groups[0][0].split()[:3] == ["medtune", "run", f"configs/{recipe.name}"], groups
    overrides = tiny_overrides(load_config(recipe), tiny_model_dir, fixtures, shared_data)
    for i, commands in enumerate(groups):  # each group is one way to do the run, in a fresh folder
        cwd = tmp_path / f"way{i}"
        cwd.mkdir()
        (cwd / "configs").symlink_to(recipe.parent)
        for command in commands:
            proc = run_literally(command, overrides, cwd)
            assert proc.returncode == 0, f"{recipe.name}: `{command}` failed ({proc.returncode}):\n{proc.stderr[-3000:]}\n{proc.stdout[-2000:]}"
    run_dir = tmp_path / "way0" / "runs" / load_config(recipe).name
    states = {p.stem: json.loads(p.read_text())["status"] for p in (run_dir / "stages").glob("*.json") if p.stem != "fingerprints"}
    assert set(states) == set(load_config(recipe).stages) and set(states.values()) == {"complete"}, states
