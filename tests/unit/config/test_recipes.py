"""Every shipped recipe validates, declares its whole chain, names its launch commands, and can run where it says.

(That each recipe runs end to end, and that its header commands work as typed, is tests/integration/test_recipes_e2e.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medtune.config import hardware_problems, load_config
from medtune.models.registry import get_preset

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
RECIPES = sorted(CONFIGS.glob("*.yaml"))
ACCELERATE = sorted((CONFIGS / "accelerate").glob("*.yaml"))
SEEDS = {"reasonmed-lora-1b", "r1-distill-8b-6gb", "medimind", "rtx3090-qlora-multidataset", "guide-qlora-r64",
         "guide-phi2", "quickstart"}


def test_every_seed_recipe_is_shipped():
    assert SEEDS <= {p.stem for p in RECIPES}


def test_quickstart_is_the_packaged_recipe():
    from medtune.utils.paths import resource_path

    packaged = resource_path("recipes", "quickstart.yaml")
    assert (CONFIGS / "quickstart.yaml").resolve() == packaged.resolve()


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_declares_its_whole_chain(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    assert {"data", "train", "eval", "export", "serve"} <= set(cfg.stages)
    assert cfg.data.sources or "synth" in cfg.stages, "a data source (with its importer) or the synth stage"
    assert all(s.format != "auto" for s in cfg.data.sources), "each source names its importer"
    assert cfg.eval.benchmarks or ("synth" in cfg.stages and cfg.synth.heldout_cases), "something to evaluate"
    assert cfg.export.gguf and cfg.train.save_steps > 0, "export types, and checkpoints to resume from"
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    assert "# Launch:" in header and f"#   medtune run configs/{path.name}" in header


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_runs_where_it_says(path):
    cfg = load_config(path)
    # GPU recipes must be runnable on a CUDA machine; the quickstart and clinic-cpu must run on this CPU too.
    assert hardware_problems(cfg, cuda_available=True) == []
    if path.stem in ("quickstart", "clinic-cpu"):
        assert hardware_problems(cfg, cuda_available=False) == []
    preset = get_preset(cfg.model.base)
    modules = cfg.train.lora.target_modules
    if isinstance(modules, list):
        known = set(preset.lora_target_modules) | {a for names in preset.target_module_aliases.values() for a in names}
        assert set(modules) <= known | {"q_proj", "k_proj", "v_proj", "o_proj"}, f"{path.name}: {modules}"


def test_seed_settings_match_the_guide():
    r = {p.stem: load_config(p) for p in RECIPES}
    assert (r["reasonmed-lora-1b"].train.optimizer, r["reasonmed-lora-1b"].train.lora.r, r["reasonmed-lora-1b"].data.max_length) == ("adafactor", 8, 512)
    assert set(r["reasonmed-lora-1b"].export.gguf) == {"f16", "q4_k_m", "q5_k_m", "q8_0"}
    assert [s.format for s in r["reasonmed-lora-1b"].data.sources] == ["reasonmed"]
    six = r["r1-distill-8b-6gb"].train
    assert (six.method, six.optimizer, six.max_steps, six.packing, six.gradient_checkpointing) == ("qlora", "adamw_8bit", 60, False, True)
    assert "Red Flags" in r["r1-distill-8b-6gb"].data.system_prompt
    assert r["medimind"].data.max_records == 500 and [s.format for s in r["medimind"].data.sources] == ["medical_o1"]
    assert r["medimind"].eval.compare_base  # MediMind's before/after answers
    rtx = r["rtx3090-qlora-multidataset"]
    assert (rtx.train.lora.r, rtx.train.lora.alpha) == (64, 16) and len(rtx.data.sources) == 3
    assert set(rtx.eval.benchmarks) == {"medqa", "medmcqa", "pubmedqa"}
    g = r["guide-qlora-r64"].train
    assert (g.lora.r, g.lora.alpha, g.scheduler, g.warmup_ratio, g.eval_steps, g.early_stopping_patience) == (64, 128, "cosine", 0.1, 100, 5)
    assert r["guide-phi2"].train.lora.target_modules == ["Wqkv", "fc1", "fc2"]
    q = r["quickstart"]
    assert (q.synth.style, q.synth.n, q.synth.heldout_cases, q.train.max_steps, q.eval.protocol) == ("demo", 500, 120, 200, "cot")


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.stem)
def test_accelerate_configs_parse(path):
    from accelerate.commands.config.config_args import ClusterConfig

    assert "Launch:" in path.read_text() and "-m medtune train" in path.read_text()
    cfg = ClusterConfig.from_yaml_file(str(path))  # accelerate's own loader fills defaults and rejects unknown keys
    assert cfg.num_processes >= 2
    if cfg.distributed_type.value == "DEEPSPEED":
        assert cfg.deepspeed_config["zero_stage"] in (2, 3)


def test_quickstart_eval_points_do_not_change_what_it_trains(tmp_path, tiny_model_dir):
    """The quickstart's eval loss every 25 steps (loss-curve points) leaves the trained adapter bit for bit as with
    none: evaluation runs in eval mode (no dropout draws; the batch order is a function of seed and step) and the
    recipe keeps the last adapter (keep_best false), not the best-by-eval-loss one that more points could pick."""
    import json

    from safetensors.torch import load_file

    from medtune.synth.demo import write_demo_training_set
    from medtune.train import train

    recipe = load_config("quickstart")
    assert recipe.train.eval_steps == 25 and recipe.train.max_steps % 25 == 0 and recipe.train.keep_best is False
    assert recipe.train.lora.dropout > 0  # dropout draws random numbers: the case to prove
    data = tmp_path / "records.jsonl"
    write_demo_training_set(data, n_cases=20, seed=0, specialties=["cardiology"])  # what the quickstart trains on
    tiny = [f"model.base={tiny_model_dir}", "train.max_steps=4", "train.save_steps=0", "data.max_length=192",
            "data.val_fraction=0.2"]
    adapters = {}
    for eval_steps in (0, 1):
        cfg = load_config("quickstart", [*tiny, f"train.eval_steps={eval_steps}"])
        result = train(cfg, data, tmp_path / f"eval{eval_steps}", progress=False)
        adapters[eval_steps] = load_file(result.output_dir / "adapter_model.safetensors")
        rows = (tmp_path / f"eval{eval_steps}" / "metrics.jsonl").read_text().splitlines()
        evals = [r for r in map(json.loads, rows) if "eval_loss" in r]
        assert len(evals) == (5 if eval_steps else 0)
    assert adapters[0].keys() == adapters[1].keys()
    assert all(adapters[0][k].equal(adapters[1][k]) for k in adapters[0])
