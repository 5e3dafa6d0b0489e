"""The train stage: `medtune train` on the data stage's records -> RUN/train (adapter/ or model/, manifest.json).

An interrupted stage resumes from the newest complete checkpoint (``train.save_steps``) through
the trainer's own resume, which replays the remaining steps exactly.
"""

from __future__ import annotations

from pathlib import Path

from ...config.load import ConfigProblem, hardware_problems
from ...config.schema import RunConfig
from ...data.hf import is_hf_spec
from ..fingerprint import stat_fingerprint
from ..registry import Context, Stage, register
from ..results import DataOutput, TrainOutput


def describe(cfg: RunConfig) -> str:
    """The stage's opening line: base, stage, method (with the adapter rank unless every weight trains), budget."""
    t = cfg.train
    start = f"{t.stage} from {t.init_from}" if t.init_from else t.stage
    method = t.method if t.method == "full" else f"{t.method} r={t.lora.r}"
    budget = f"{t.max_steps} steps" if t.max_steps > 0 else f"{t.epochs:g} epochs"
    return f"{cfg.model.base}: {start}, {method}, {budget}, checkpoints every {t.save_steps or '-'} steps"


def _run(ctx: Context, resume: bool) -> TrainOutput:
    from ...train import checkpoints as ckpt
    from ...train import train

    folder = ctx.layout.folder("train")
    cfg = ctx.cfg
    recipe = init_recipe(cfg.train.init_from)
    if recipe:  # brought up to date by _inputs, before the key: train from the run it left
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"init_from": str(recipe_run(recipe))})})
    latest = ckpt.latest_valid(folder / "checkpoints") if resume else None
    if resume:
        ctx.echo(f"resuming from {latest}" if latest else "no complete checkpoint yet: training from step 0")
    ctx.echo(describe(cfg))
    result = train(cfg, _records(ctx), folder, resume=resume, progress=ctx.progress)
    losses = (f"eval loss {result.first_eval_loss:.4f} -> {result.final_eval_loss:.4f}" if result.first_eval_loss is not None
              else f"train loss {result.train_loss}")
    ctx.echo(f"{result.steps} steps, {result.tokens_per_s:.0f} tokens/s; {losses}; output {result.output_dir}")
    return TrainOutput(run_dir=folder, output_dir=result.output_dir, steps=result.steps,
                       resumed_from_step=int(latest.name.split("-")[1]) if latest else None,
                       train_loss=result.train_loss, first_eval_loss=result.first_eval_loss,
                       final_eval_loss=result.final_eval_loss, tokens_per_s=result.tokens_per_s)


def init_recipe(spec: str | None) -> Path | None:
    """``train.init_from`` naming a recipe (a .yaml/.yml file or a packaged recipe name) rather than a run folder.

    >>> init_recipe("configs/quickstart.yaml").name, init_recipe("quickstart").name, init_recipe("runs/qs/train")
    ('quickstart.yaml', 'quickstart.yaml', None)
    """
    from ...config.load import resolve_config_path

    if not spec or Path(spec).expanduser().is_dir():
        return None
    path = resolve_config_path(spec)
    return path if path.suffix in (".yaml", ".yml") else None


def recipe_run(recipe: Path) -> Path:
    """The run folder the recipe's train stage writes (RUN/train of `medtune run RECIPE`)."""
    from ...config.load import load_config
    from ..registry import RunLayout

    return RunLayout.of(load_config(recipe)).folder("train")


def _run_recipe(ctx: Context) -> TrainOutput:
    """`medtune run` of the recipe named by train.init_from, up to its train stage (skipped where up to date): SFT -> RL.

    Called by ``_inputs``, so the stage's key holds the SFT model as it is after this run: a retrained one trains again.
    """
    from ...config.load import ConfigError, load_config
    from ...config.schema import STAGE_NAMES
    from ..runner import run_pipeline

    recipe = init_recipe(ctx.cfg.train.init_from)
    if recipe.resolve() in _RUNNING:
        raise ConfigError([ConfigProblem("train.init_from", f"{recipe} is already being run: the recipes' init_from form a loop",
                                         "start the chain from a recipe whose stage is sft")], "train")
    sub = load_config(recipe)
    upto = [s for s in sub.stages if STAGE_NAMES.index(s) <= STAGE_NAMES.index("train")]
    if "train" not in upto:
        raise ConfigError([ConfigProblem("train.init_from", f"{recipe} has no train stage", "name a recipe that trains")], "train")
    ctx.echo(f"--- train.init_from: running {recipe} ({', '.join(upto)}) ---")
    _RUNNING.add(recipe.resolve())
    try:
        done = run_pipeline(sub, only=upto, echo=lambda line: ctx.echo(f"  {line}"), progress=ctx.progress, source=str(recipe))
    finally:
        _RUNNING.discard(recipe.resolve())
    return done.get(TrainOutput)


_RUNNING: set[Path] = set()  # recipes whose pipelines are running in this process (init_from chains)


def _records(ctx: Context) -> list[str] | None:
    """The data stage's records; without a data stage, data.train_files as they are (None: the trainer reads them)."""
    data = ctx.get(DataOutput)
    if data is None and not ctx.cfg.data.train_files:
        ctx.need(DataOutput, "train")  # raises, naming what to do
    return [str(data.records)] if data else None


def _inputs(ctx: Context) -> dict[str, Path | str]:
    records = _records(ctx)
    files = records or ctx.cfg.data.train_files + ctx.cfg.data.val_files
    out: dict[str, Path | str] = ({"records": Path(files[0])} if records else
                                  {f"data file {f}": f if is_hf_spec(f) else Path(f) for f in files})
    init = ctx.cfg.train.init_from
    if init:  # the trained output it starts from: a recipe's SFT run is brought up to date first (run, or skipped)
        out["init run"] = _run_recipe(ctx).output_dir if init_recipe(init) else _init_output(init)
    if ctx.cfg.train.stage != "sft" and not records:  # no data stage screened these files: the stage's own screen does
        out.update(_screen_inputs(ctx.cfg))
    base = Path(ctx.cfg.model.base).expanduser()
    if base.exists():  # a folder or .gguf on disk: recognised by names, sizes and mtimes, not by re-reading GBs
        out["base model"] = f"files:{stat_fingerprint(base) if base.is_dir() else [base.stat().st_size, base.stat().st_mtime_ns]}"
    return out


def _screen_inputs(cfg: RunConfig) -> dict[str, Path | str]:
    """What the RL stage's contamination screen (``train.rl._screen``) reads: data.contamination and, unless off, the
    benchmarks it checks (eval.benchmarks) and their files under eval.data_root, as the data stage's own check."""
    from ...data.contamination import benchmark_files
    from .data import contamination_benchmarks

    mode = cfg.data.contamination
    if mode == "off":
        return {"contamination": mode}
    names = contamination_benchmarks(cfg)
    out: dict[str, Path | str] = {"contamination": f"{mode} against {', '.join(names)}"}
    for name, files in benchmark_files(cfg.eval.data_root, names).items():
        out.update({f"contamination benchmark {name} file {j}": f if is_hf_spec(f) else Path(f) for j, f in enumerate(files)})
    return out


def _init_output(spec: str) -> Path:
    from ...train.rl import init_run

    run = init_run(spec)
    return run / "adapter" if (run / "adapter").is_dir() else run / "model"


def _preflight(cfg: RunConfig) -> list[ConfigProblem]:
    probs = hardware_problems(cfg)
    init = cfg.train.init_from
    if init and not init_recipe(init):
        from ...config.load import ConfigError

        try:
            _init_output(init)
        except ConfigError as e:
            probs += e.problems
    elif init and not init_recipe(init).is_file():
        probs.append(ConfigProblem("train.init_from", f"{init}: recipe file not found", "give a recipe path or a run folder"))
    if "data" not in cfg.stages and not cfg.data.train_files:
        probs.append(ConfigProblem("stages", "the train stage has no data: no data stage and no data.train_files",
                                   "add data to stages (with data.sources) or set data.train_files"))
    return probs


# The data stage's own fields reach training through its records (an input): a changed contamination mode or
# dedupe threshold that leaves the records as they were does not train again. An RL stage that reads
# data.train_files screens them itself: then data.contamination and the benchmarks are inputs (_screen_inputs).
DATA_STAGE_ONLY = ("data.sources", "data.mix_total", "data.dedupe", "data.dedupe_threshold", "data.contamination")

register(Stage("train", TrainOutput, reads=("model", "data", "train"), run=_run, inputs=_inputs, preflight=_preflight,
               ignores=DATA_STAGE_ONLY))
