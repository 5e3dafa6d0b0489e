"""Supervised fine-tuning: setup() -> fit() -> save(), on one CPU, one GPU or many (accelerate).

The loop is plain PyTorch driven by accelerate (device placement, DDP/FSDP/DeepSpeed, mixed
precision, no_sync during accumulation); models, adapters, optimizers and schedules come from
transformers/PEFT. What medtune adds:

* a step's micro-batches are a pure function of (seed, step) (see ``packing``), and the
  loss of a step is the sum of token cross-entropies divided by the step's *global* count of
  trainable tokens -- so gradient accumulation, packing and the number of processes do not
  change the objective, and a resumed run replays exactly;
* logits are computed only at positions that carry loss (``logits_to_keep`` with indices),
  which on a 49k-vocabulary model skips most of the LM-head work and its memory;
* checkpoints are atomic and verified (``checkpoints``), the best adapter by eval loss is kept.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.schema import RunConfig
from ..utils.io import removed_if_left_empty
from . import checkpoints as ckpt
from .data import TrainingData, load_training_records, render_training_data
from .forward import (
    ForwardPlan,
    collate_forward,
    forward_plan,
    group_packs,
    loss_sum,
    training_attention,
)
from .packing import (
    epoch_order,
    make_batches,
    micro_batches_per_step,
    refuse_deepspeed_accumulation,
    trainable_tokens,
)
from .setup import (
    apply_peft,
    build_optimizer,
    build_scheduler,
    count_parameters,
    loads_in_4bit,
    make_accelerator,
    resolve_precision,
)

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    output_dir: Path  # RUN/adapter (PEFT methods) or RUN/model (full fine-tuning)
    steps: int
    train_loss: float | None
    first_eval_loss: float | None
    final_eval_loss: float | None
    best_eval_loss: float | None
    tokens_per_s: float
    wall_time_s: float
    peak_memory_mb: float
    stopped_early: bool = False
    is_main_process: bool = True
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass
class Setup:
    accelerator: Any
    loaded: Any  # medtune.models.load.LoadedModel (base + tokenizer)
    model: Any  # PEFT-wrapped (or full) model, prepared by accelerate
    optimizer: Any
    scheduler: Any
    data: TrainingData
    batches: list[list[int]]
    total_steps: int
    fmt: str
    precision: Any = None  # models.precision.TrainPrecision
    plan: ForwardPlan = field(default_factory=ForwardPlan)  # packs per forward pass (see train/forward.py)


def setup(cfg: RunConfig, data_paths: list[str] | None, run_dir: Path) -> Setup:
    """Load base + tokenizer, render the data, wrap with PEFT, build optimizer and schedule."""
    from accelerate.utils import set_seed

    from ..models.load import load_model, pick_device

    t = cfg.train
    device = pick_device("auto")
    precision = resolve_precision(cfg, device)
    accelerator = make_accelerator(precision.mixed_precision, cpu=not device.startswith("cuda"))
    set_seed(t.seed)
    # Data first: a wrong source or unreadable records fail in seconds, not after the base model loads.
    records = load_training_records(cfg.data, data_paths, run_dir if accelerator.is_main_process else None)
    loaded = load_model(cfg.model.base, device=str(accelerator.device), dtype=precision.weights, load_in_4bit=loads_in_4bit(cfg),
                        revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code,
                        attn_implementation=training_attention(device))
    fmt = cfg.model.resolved_reasoning_format(loaded.source.reasoning_format)
    data = render_training_data(records, cfg.data, loaded.tokenizer, fmt)
    model = loaded.model
    model.config.use_cache = False
    if t.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = apply_peft(model, t, loaded.source.preset)
    if device == "cpu":
        from .cpu_lora import tune_lora_for_cpu

        tune_lora_for_cpu(model, precision.compute)
    set_seed(t.seed)  # adapter init consumed RNG; re-seed so the data-independent stream starts equal
    batches = make_batches(data.train, packing=t.packing, batch_size=t.batch_size, max_length=cfg.data.max_length)
    per_step = micro_batches_per_step(packing=t.packing, batch_size=t.batch_size, grad_accum=t.grad_accum,
                                      processes=accelerator.num_processes)
    total = t.max_steps if t.max_steps > 0 else math.ceil(t.epochs * len(batches) / per_step)
    optimizer = build_optimizer(model, t)
    scheduler = build_scheduler(optimizer, t, total)
    model, optimizer = accelerator.prepare(model, optimizer)
    plan = forward_plan(device, getattr(loaded.model.config, "_attn_implementation", None), t.batch_size, t.packing)
    refuse_deepspeed_accumulation(accelerator, per_step // accelerator.num_processes, plan.rows)
    return Setup(accelerator, loaded, model, optimizer, scheduler, data, batches, total, fmt, precision, plan)


def step_batches(step: int, n_batches: int, per_step: int, seed: int) -> list[int]:
    """Global micro-batch indices of one optimizer step, walking seeded epoch orders.

    >>> step_batches(0, 4, 2, seed=1) + step_batches(1, 4, 2, seed=1) == sorted(range(4))
    False
    >>> sorted(step_batches(0, 4, 2, seed=1) + step_batches(1, 4, 2, seed=1))
    [0, 1, 2, 3]
    """
    out = []
    for j in range(step * per_step, (step + 1) * per_step):
        epoch, k = divmod(j, n_batches)
        out.append(epoch_order(n_batches, seed, epoch)[k])
    return out


def collate(s: Setup, examples: list, packs: list[list[int]], packing: bool) -> dict[str, Any]:
    """One forward pass's tensors on the device: ``packs`` are lists of example indices (see ``forward``)."""
    data = collate_forward(examples, packs, s.plan, s.loaded.tokenizer.pad_token_id, packing)
    return {k: v.to(s.accelerator.device) for k, v in data.items()}


def evaluate(s: Setup, cfg: RunConfig) -> float | None:
    """Token-weighted eval loss on the validation examples, summed over all processes."""
    import torch

    if not s.data.val:
        return None
    batches = make_batches(s.data.val, packing=cfg.train.packing, batch_size=cfg.train.batch_size, max_length=cfg.data.max_length)
    mine = list(range(len(batches)))[s.accelerator.process_index :: s.accelerator.num_processes]
    total = torch.zeros(2, dtype=torch.float64, device=s.accelerator.device)
    s.model.eval()
    with torch.no_grad():
        for group in group_packs(mine, s.plan.rows):
            packs = [batches[b] for b in group]
            total[0] += loss_sum(s.model, collate(s, s.data.val, packs, cfg.train.packing), s.plan.fused_ce).double()
            total[1] += sum(trainable_tokens(s.data.val, p) for p in packs)
    s.model.train()
    total = s.accelerator.reduce(total, reduction="sum")
    return float(total[0] / total[1]) if total[1] > 0 else None


def save_output(s: Setup, method: str, out: Path) -> Path:
    """RUN/adapter (PEFT adapter + tokenizer) or RUN/model (full HF folder + tokenizer), atomically.

    Every process must call this (FSDP/DeepSpeed gather the state dict collectively); only the
    main process writes.
    """
    from ..utils.io import atomic_dir

    state = s.accelerator.get_state_dict(s.model)
    if s.accelerator.is_main_process:
        with atomic_dir(out) as tmp:
            s.accelerator.unwrap_model(s.model).save_pretrained(tmp, state_dict=state, safe_serialization=True)
            s.loaded.tokenizer.save_pretrained(tmp)
    s.accelerator.wait_for_everyone()
    return out


def _new_state() -> dict[str, Any]:
    return {"best_eval": None, "best_step": None, "bad_evals": 0, "first_eval": None, "last_eval": None,
            "tokens": 0, "rank_tokens": 0, "elapsed_s": 0.0, "stopped_early": False, "window": []}


BEST_STEP = "BEST_STEP"  # RUN/best/BEST_STEP: the step whose weights RUN/best holds, written after them


def _save_best(s: Setup, cfg: RunConfig, run_dir: Path, step: int) -> None:
    """RUN/best <- this step's adapter (or model), then its step marker: a best/ is trusted only with a matching marker."""
    save_output(s, cfg.train.method, run_dir / "best")
    if s.accelerator.is_main_process:
        (run_dir / "best" / BEST_STEP).write_text(f"{step}\n", encoding="utf-8")
    s.accelerator.wait_for_everyone()


def _best_holds(best: Path, step: int | None) -> bool:
    """Whether RUN/best holds the weights of ``step`` (as this run's bookkeeping names it)."""
    marker = best / BEST_STEP
    return step is not None and marker.is_file() and marker.read_text(encoding="utf-8").strip() == str(step)


def _eval_and_track(s: Setup, cfg: RunConfig, run_dir: Path, step: int, state: dict[str, Any], metrics: Any) -> None:
    """Eval loss, early-stopping bookkeeping, and the best adapter by eval loss (RUN/best)."""
    loss = evaluate(s, cfg)
    if loss is None:
        return
    state["last_eval"] = loss
    state["first_eval"] = loss if state["first_eval"] is None else state["first_eval"]
    metrics.log(step, eval_loss=loss)
    if state["best_eval"] is None or loss < state["best_eval"] - 1e-6:
        state.update(best_eval=loss, best_step=step, bad_evals=0)
        if cfg.train.keep_best and step > 0:  # step 0 is the untrained model: nothing to keep
            _save_best(s, cfg, run_dir, step)
    else:
        state["bad_evals"] += 1
        patience = cfg.train.early_stopping_patience
        state["stopped_early"] = bool(patience and state["bad_evals"] >= patience)


def _run_step(s: Setup, cfg: RunConfig, step: int) -> tuple[float, int, int]:
    """One optimizer step over this process's share of the step's micro-batches -> (loss, global tokens, local tokens)."""
    import torch

    t, acc = cfg.train, s.accelerator
    per_step = micro_batches_per_step(packing=t.packing, batch_size=t.batch_size, grad_accum=t.grad_accum,
                                      processes=acc.num_processes)
    glob = step_batches(step, len(s.batches), per_step, t.seed)
    n_global = sum(trainable_tokens(s.data.train, s.batches[g]) for g in glob)
    tokens = sum(len(s.data.train[i]) for g in glob for i in s.batches[g])
    mine = glob[acc.process_index :: acc.num_processes]
    local = sum(len(s.data.train[i]) for g in mine for i in s.batches[g])
    total = torch.zeros((), dtype=torch.float64, device=acc.device)
    passes = group_packs(mine, s.plan.rows)
    for k, group in enumerate(passes):
        batch = collate(s, s.data.train, [s.batches[g] for g in group], t.packing)
        # Skip the gradient all-reduce on all but the last micro-batch (DDP no_sync).
        with acc.no_sync(s.model) if k < len(passes) - 1 else nullcontext(), acc.autocast():
            part = loss_sum(s.model, batch, s.plan.fused_ce)
            acc.backward(part * acc.num_processes / n_global)
        total += part.detach().double()
    acc.clip_grad_norm_(s.model.parameters(), t.max_grad_norm)
    s.optimizer.step()
    s.scheduler.step()
    s.optimizer.zero_grad(set_to_none=True)
    return float(acc.reduce(total, reduction="sum")) / max(n_global, 1), tokens, local


def fit(s: Setup, cfg: RunConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """The training loop: steps, logging, eval, early stopping, checkpoints, exact resume."""
    from tqdm.auto import tqdm

    from .manifest import MetricsLog

    t, acc = cfg.train, s.accelerator
    start, state = 0, _new_state()
    root = run_dir / "checkpoints"
    if resume:
        found = ckpt.latest_valid(root)
        if found is None:
            log.warning("no complete checkpoint under %s: starting from step 0", root)
        else:
            state.update(ckpt.load_checkpoint(found, acc.unwrap_model(s.model), s.optimizer, s.scheduler))
            start = state.pop("step")
            log.info("resumed from %s (step %d)", found, start)
    if start == 0 and acc.is_main_process:  # a fresh run: a best/ left by an earlier run in this folder is not ours
        shutil.rmtree(run_dir / "best", ignore_errors=True)
    acc.wait_for_everyone()
    metrics = MetricsLog(run_dir, start, enabled=acc.is_main_process)
    # from_pretrained returns a model in eval mode: without this, a run with no eval at step 0 (no
    # eval_steps, no validation split, or a resume) trained with dropout off and checkpointing inert.
    s.model.train()
    if start == 0 and t.eval_steps:
        _eval_and_track(s, cfg, run_dir, 0, state, metrics)
    bar = tqdm(total=s.total_steps, initial=start, desc="train", unit="step", disable=not (progress and acc.is_main_process))
    step = start
    for step in range(start + 1, s.total_steps + 1):
        t0 = time.perf_counter()
        loss, tokens, local = _run_step(s, cfg, step - 1)
        state["elapsed_s"] += time.perf_counter() - t0  # step time only: evals and saves are not training
        state["tokens"] += tokens
        state["rank_tokens"] += local
        state["window"].append(loss)
        tps = state["tokens"] / max(state["elapsed_s"], 1e-9)
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tps:.0f}", refresh=False)
        bar.update(1)
        if step % t.logging_steps == 0 or step == s.total_steps:
            metrics.log(step, train_loss=sum(state["window"]) / len(state["window"]),
                        lr=s.scheduler.get_last_lr()[0], tokens_per_s=tps)
            state["window"] = []
        if t.eval_steps and (step % t.eval_steps == 0 or step == s.total_steps):
            _eval_and_track(s, cfg, run_dir, step, state, metrics)
        if state["stopped_early"]:
            log.warning("early stopping at step %d: no eval improvement in %d evaluations", step, t.early_stopping_patience)
            break
        if t.save_steps and step % t.save_steps == 0 and step < s.total_steps:
            acc.wait_for_everyone()
            if acc.is_main_process:
                ckpt.save_checkpoint(root, step, acc.unwrap_model(s.model), s.optimizer, s.scheduler, state, t.save_total_limit)
            acc.wait_for_everyone()
    bar.close()
    metrics.close()
    return {**state, "steps": step, "rows": metrics.rows}


def _finish(s: Setup, cfg: RunConfig, run_dir: Path, stats: dict[str, Any], wall: float) -> TrainResult:
    """Final adapter/model (the best by eval loss when kept), loss curve, manifest."""
    from ..utils.io import atomic_dir, atomic_write_json
    from .manifest import hardware, peak_memory_mb, plot_loss_curve, write_manifest

    out = run_dir / ("model" if cfg.train.method == "full" else "adapter")
    best = run_dir / "best"
    best_step = stats["best_step"]
    # Only a best/ this run wrote, at the step its bookkeeping names; step 0 (the untrained model) is never saved.
    use_best = cfg.train.keep_best and best_step not in (None, 0, stats["steps"]) and _best_holds(best, best_step)
    untrained_best = cfg.train.keep_best and best_step == 0 and stats["steps"] > 0
    if untrained_best:
        log.warning("no eval beat the untrained model's (step 0, eval loss %.4f): the output is the last step's weights "
                    "(step %d), not a better checkpoint", stats["best_eval"], stats["steps"])
    if use_best and s.accelerator.is_main_process:
        with atomic_dir(out) as tmp:
            shutil.copytree(best, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(BEST_STEP))
    s.accelerator.wait_for_everyone()
    if not use_best:
        save_output(s, cfg.train.method, out)
    import torch

    per_rank = s.accelerator.gather(torch.tensor([stats["rank_tokens"]], device=s.accelerator.device)).tolist()
    trainable, total = count_parameters(s.accelerator.unwrap_model(s.model))
    tps = stats["tokens"] / max(stats["elapsed_s"], 1e-9)
    fields = {
        "run_id": f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}", "base_model": cfg.model.base,
        "base_revision": cfg.model.revision, "base_path": str(s.loaded.path), "reasoning_format": s.fmt, "system_prompt": cfg.data.system_prompt,
        "method": cfg.train.method,
        "output": out.name, "output_is_best_checkpoint": use_best, "untrained_was_best": untrained_best,
        "data_files": s.data.files,
        "data_manifest_sha256": s.data.files, "quarantined_records": s.data.quarantined,
        "examples": {"train": len(s.data.train), "val": len(s.data.val)},
        "render_audit": {k: {kk: vv for kk, vv in r.to_dict().items() if kk != "problems"} for k, r in s.data.reports.items()},
        "steps": stats["steps"], "total_steps": s.total_steps, "stopped_early": stats["stopped_early"],
        "tokens_per_rank": per_rank, "hardware": hardware(str(s.accelerator.device), s.accelerator.num_processes),
        "precision": s.precision.to_dict() if s.precision else None, "forward_plan": s.plan.describe(),
        "wall_time_s": round(wall, 2), "tokens_trained": stats["tokens"], "train_time_s": round(stats["elapsed_s"], 2), "tokens_per_s": round(tps, 1),
        "peak_memory_mb": peak_memory_mb(), "trainable_params": trainable, "total_params": total,
        "first_eval_loss": stats["first_eval"], "final_eval_loss": stats["last_eval"],
        "best_eval_loss": stats["best_eval"], "best_step": stats["best_step"],
        "train_loss": next((r["train_loss"] for r in reversed(stats["rows"]) if "train_loss" in r), None),
    }
    if s.accelerator.is_main_process:
        atomic_write_json(run_dir / "render_report.json", {k: r.to_dict() for k, r in s.data.reports.items()})
        plot_loss_curve(stats["rows"], run_dir / "loss_curve.png", f"{cfg.name}: {cfg.model.base} ({cfg.train.method})")
        write_manifest(run_dir, fields)
    return TrainResult(run_dir, out, stats["steps"], fields["train_loss"], stats["first_eval"], stats["last_eval"],
                       stats["best_eval"], fields["tokens_per_s"], fields["wall_time_s"], fields["peak_memory_mb"],
                       stats["stopped_early"], s.accelerator.is_main_process, fields)


def train(cfg: RunConfig, data_path: str | Path | list[str] | None = None, run_dir: str | Path | None = None,
          resume: bool = False, *, progress: bool = True) -> TrainResult:
    """Fine-tune ``cfg.model.base`` on medtune records and write the run folder.

    ``data_path`` (a records file or folder, or a list) overrides ``cfg.data.train_files``.
    ``resume=True`` continues from the newest complete checkpoint in ``run_dir/checkpoints``.
    """
    from ..config.load import ConfigError, ConfigProblem, save_resolved

    t0 = time.perf_counter()
    run_dir = Path(run_dir or cfg.run_dir or Path("runs") / cfg.name)
    if not resume and ckpt.list_checkpoints(run_dir / "checkpoints"):
        raise ConfigError([ConfigProblem("run_dir", f"{run_dir} already holds checkpoints of an earlier run",
                                         "pass --resume to continue it, or --out NEW_DIR")], "train")
    paths = None if data_path is None else [str(p) for p in (data_path if isinstance(data_path, list) else [data_path])]
    if paths:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"train_files": paths, "val_files": []})})
    cfg = cfg.model_copy(update={"run_dir": str(run_dir)})
    if cfg.train.stage == "sft" and cfg.train.init_from:
        raise ConfigError([ConfigProblem("train.init_from", "the sft stage starts from model.base",
                                         "set model.base to the model, or train.stage to grpo, dpo or orpo")], "train")
    with removed_if_left_empty(run_dir, own=("config.yaml",)):  # a refused run leaves no folder behind
        if cfg.train.stage != "sft":  # the second stage: TRL's GRPO / DPO / ORPO trainers (train/rl.py)
            from .rl import train_rl

            save_resolved(cfg, run_dir)
            return train_rl(cfg, paths, run_dir, resume, progress)
        s = setup(cfg, paths, run_dir)
    if s.accelerator.is_main_process:
        save_resolved(cfg, run_dir)
        log.info("data: train %s | val %s", s.data.reports["train"].summary(), s.data.reports["val"].summary())
    stats = fit(s, cfg, run_dir, resume, progress)
    result = _finish(s, cfg, run_dir, stats, time.perf_counter() - t0)
    s.accelerator.end_training()
    return result
