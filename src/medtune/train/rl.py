"""The second training stage: GRPO, DPO or ORPO through TRL's trainers, in the SFT run folder's layout.

``train.stage`` picks the trainer (``trl.GRPOTrainer``, ``trl.DPOTrainer``,
``trl.experimental.orpo.ORPOTrainer``); medtune writes no RL loop of its own. What it adds:

* **the starting point** -- ``train.init_from`` names a trained run; its adapter is merged into
  the base (in memory) and a new LoRA adapter is trained on top, so DPO's and GRPO's reference
  model (the adapter switched off) is the SFT policy itself. The run copies the adapters it
  started from into ``RUN/init/`` and lists them in its manifest; ``load_trained`` re-applies
  them in order, so eval, export and serve read an RL run like any other. From a full
  fine-tune the new adapter's base is that run's ``model/``, copied to ``RUN/init/model``;
* **the data** (``pairs``): prompts rendered exactly as eval asks them, the contamination check
  against every declared benchmark before training (overlap stops the stage), bad rows in
  ``RUN/quarantine.jsonl``, unusable imported pairs and pairs whose answers first differ past
  ``data.max_length`` (truncation would leave them identical) in ``RUN/quarantine-pairs.jsonl``;
* **rewards** from ``rewards`` (the eval extractor), each logged as its own curve;
* the same outputs as SFT: ``RUN/adapter``, ``checkpoints/`` (TRL's, sealed with medtune's
  COMPLETE marker so a resume trusts only whole ones), ``metrics.jsonl``, TensorBoard, the loss
  and reward curves, ``manifest.json``.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from ..config.load import ConfigError, ConfigProblem
from ..config.schema import RunConfig
from ..data.quality import Quarantine
from ..data.records import Answer, Record
from . import checkpoints as ckpt
from .pairs import (
    PreferencePair,
    grpo_rows,
    is_pairs_file,
    keep_decided,
    on_policy_pairs,
    read_pairs,
    synth_pairs,
    trl_prompt,
    verifiable,
)

log = logging.getLogger(__name__)
PAIRS_QUARANTINE = "quarantine-pairs.jsonl"  # imported rows that cannot be used, pairs truncation leaves undecided
OPTIMIZERS = {"adamw": "adamw_torch", "adamw_8bit": "adamw_bnb_8bit", "adafactor": "adafactor"}


def init_run(spec: str) -> Path:
    """The training run a stage starts from: a `medtune train` folder, or a `medtune run` folder's train stage."""
    path = Path(spec).expanduser()
    for candidate in (path, path / "train"):
        if (candidate / "manifest.json").is_file() and ((candidate / "adapter").is_dir() or (candidate / "model").is_dir()):
            return candidate
    hint = ("a recipe's SFT runs first only under `medtune run`; for `medtune train`, name its run folder (runs/<name>)"
            if str(spec).endswith((".yaml", ".yml")) else "train the SFT stage first, or name its run folder")
    raise ConfigError([ConfigProblem("train.init_from", f"{spec}: not a finished training run (no manifest.json with "
                                     "adapter/ or model/)", hint)], "train")


def _link_tree(src: Path, dst: Path) -> None:
    """Copy a model folder, hard-linking its files where the filesystem allows: medtune replaces a run's
    folders whole (``atomic_dir``), never a file in place, so a link keeps the old weights like a copy would."""
    import os

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link)


def _start_model(cfg: RunConfig, run_dir: Path, device: str, precision: Any) -> tuple[Any, list[str], str | None, dict]:
    """(the loaded starting model, its init adapters copied under RUN/init/, the full model it started from copied
    there, the base fields of the run's manifest) -- the base, or an earlier run merged.

    A PEFT run's adapter applies to its manifest's ``base_path`` with the ``init_adapters`` merged in order. From an
    adapter run that is the earlier run's base plus its adapters; from a full fine-tune (``model/``, which holds every
    weight, its own init adapters merged) it is that model, copied to ``RUN/init/model`` (hard links where possible)
    so the run still reads the model it trained on when the earlier run is retrained or removed.
    The base fields (``base_model``, ``base_revision``, ``base_path``) name one model together: the earlier run's
    when the adapter applies to its base, so a moved run falls back to that base at the revision it trained on.
    """
    from ..models.load import load_model
    from .load import INIT_MODEL, load_trained, read_manifest
    from .setup import loads_in_4bit

    if not cfg.train.init_from:
        loaded = load_model(cfg.model.base, device=device, dtype=precision.weights, load_in_4bit=loads_in_4bit(cfg),
                            revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code)
        return loaded, [], None, {"base_model": cfg.model.base, "base_revision": cfg.model.revision,
                                  "base_path": str(loaded.path)}
    if loads_in_4bit(cfg):
        field = "train.method" if cfg.train.method == "qlora" else "model.load_in_4bit"
        raise ConfigError([ConfigProblem(field, "4-bit loading cannot start from a trained run (its adapter would be "
                                         "merged into 4-bit weights)", "use method lora on a 16-bit base")], "train")
    start = init_run(cfg.train.init_from)
    manifest = read_manifest(start)
    loaded = load_trained(start, device=device, dtype=precision.weights, merge=True)
    shutil.rmtree(run_dir / "init", ignore_errors=True)  # what an earlier run into this folder started from
    start_base = {"base_model": manifest.get("base_model", cfg.model.base), "base_revision": manifest.get("base_revision"),
                  "base_path": manifest["base_path"]}
    if (start / "model").is_dir():
        if cfg.train.method == "full":  # RUN/model will hold every weight: nothing to apply it to
            return loaded, [], None, start_base
        _link_tree(start / "model", run_dir / INIT_MODEL)
        return loaded, [], INIT_MODEL, {**start_base, "base_path": str((run_dir / INIT_MODEL).resolve())}
    chain = [start / a for a in manifest.get("init_adapters", [])] + [start / "adapter"]
    copied = []
    for i, src in enumerate(chain):
        dst = run_dir / "init" / str(i)
        shutil.copytree(src, dst)
        copied.append(str(dst.relative_to(run_dir)))
    return loaded, copied, None, start_base


def _screen(records: list[Record], cfg: RunConfig, run_dir: Path) -> None:
    """The contamination check of the stage's prompts against every declared benchmark: overlap stops it."""
    from ..data.contamination import (
        ContaminationReport,
        declared_benchmarks,
        default_index,
        filter_contaminated,
    )
    from ..utils.io import atomic_write_json

    if cfg.data.contamination == "off" or not records:
        return
    index, counts = default_index(cfg.eval.data_root, declared_benchmarks(cfg.eval.benchmarks))
    report = ContaminationReport(benchmarks=counts, not_checked=dict(index.skipped))
    for _ in filter_contaminated(records, index, report, drop=False):
        pass
    atomic_write_json(run_dir / "contamination.json", report.to_dict())
    for name, why in report.not_checked.items():
        log.warning("contamination: not checked against %s: %s", name, why)
    if report.flagged:
        first = ", ".join(f"{h.record_id} ~ {'/'.join(h.benchmark_ids[:1])}" for h in report.hits[:3])
        raise ConfigError([ConfigProblem("data.train_files", f"{report.flagged} of {report.checked} training prompts overlap "
                                         f"benchmark items ({first}); report: {run_dir / 'contamination.json'}",
                                         "remove them from the training files (the data stage of `medtune run`, or "
                                         "`medtune data import`, leaves them out with data.contamination=drop)")], "train")


def _pair_records(pairs: list[PreferencePair]) -> list[Record]:
    return [Record.create(id=p.id, source="pairs", task="open", question=p.prompt, answer=Answer(text=p.chosen)) for p in pairs]


def _preference_pairs(cfg: RunConfig, pair_files: list[str], records: list[Record], run_dir: Path, loaded: Any,
                      fmt: str) -> tuple[list[PreferencePair], dict[str, int]]:
    """DPO/ORPO pairs: imported, else made from the records (synth or sampled), screened, less those truncation
    to data.max_length would leave undecided (``pairs.keep_decided``). Bad rows and undecided pairs go to
    RUN/quarantine-pairs.jsonl; returns the pairs and the counts for the manifest (undecided ones among the quarantined)."""
    t, tok, sysp = cfg.train, loaded.tokenizer, cfg.data.system_prompt
    with Quarantine(run_dir / PAIRS_QUARANTINE) as q:
        imported = read_pairs(pair_files, tok, sysp, q) if pair_files else []
        _screen(verifiable(records) + _pair_records(imported), cfg, run_dir)  # before any pair is made or sampled
        if t.rl.pairs == "on_policy":
            made = on_policy_pairs(loaded.model, tok, records, fmt, sysp, rl=t.rl, samples=t.rl.num_generations, seed=t.seed)
        else:
            made = synth_pairs(records, tok, fmt, sysp) if not imported else []
        before = q.count
        pairs = keep_decided(imported + made, tok, cfg.data.max_length, q, orpo=t.stage == "orpo")
    undecided = q.count - before
    if undecided and not pairs:
        raise ConfigError([ConfigProblem("data.max_length", f"each of the {undecided} preference pairs has the same first "
                                         f"{cfg.data.max_length} tokens in chosen and rejected, so truncation leaves none to "
                                         f"learn from; see {run_dir / PAIRS_QUARANTINE}",
                                         "raise data.max_length past where the answers differ (the quarantine says where)")], "train")
    if undecided:
        log.warning("%d of %d preference pairs dropped: chosen and rejected first differ after data.max_length=%d tokens "
                    "(see %s)", undecided, undecided + len(pairs), cfg.data.max_length, run_dir / PAIRS_QUARANTINE)
    return pairs, {"quarantined_pairs": q.count, "undecided_pairs": undecided}


def sft_only_settings(cfg: RunConfig) -> list[str]:
    """Settings given away from their defaults that only SFT reads: said in the log, never silently dropped.
    (TRL's preference and GRPO trainers put the loss on the completion, keep the start of an over-long one and
    evaluate nothing periodically.)"""
    t, d = cfg.train, cfg.data
    given = [f"train.{k}" for k in ("eval_steps", "early_stopping_patience") if getattr(t, k)]
    given += [f"train.{k}={getattr(t, k)}" for k in ("packing", "keep_best") if getattr(t, k) != type(t).model_fields[k].default]
    given += [f"data.{k}={getattr(d, k)}" for k in ("loss_on", "truncation")
              if getattr(d, k) != type(d).model_fields[k].default]
    return given


def stage_data(cfg: RunConfig, paths: list[str] | None, run_dir: Path, loaded: Any,
               fmt: str) -> tuple[Any, dict[str, int], dict[str, str]]:
    """The stage's dataset (a ``datasets.Dataset``), counts and the sha256 of every file read, for the manifest."""
    from datasets import Dataset

    from ..utils.io import sha256_file
    from .data import load_training_records

    t, data = cfg.train, cfg.data
    files = list(paths or data.train_files)
    pair_files = [f for f in files if is_pairs_file(f)] if t.stage != "grpo" and t.rl.pairs == "auto" else []
    record_files = [f for f in files if f not in pair_files]
    records: list[Record] = []
    read_files = {f: sha256_file(f) for f in pair_files}
    if record_files:
        read = load_training_records(data.model_copy(update={"val_fraction": 0.0}), record_files, run_dir)
        records = read.train + read.val
        read_files.update(read.files())
    if t.stage == "grpo":
        _screen(verifiable(records), cfg, run_dir)
        rows, counts = grpo_rows(records, loaded.tokenizer, fmt, data.system_prompt), {}
        kinds = {"prompts": len(rows)}
    else:
        pairs, counts = _preference_pairs(cfg, pair_files, records, run_dir, loaded, fmt)
        rows = [{k: v for k, v in p.row().items() if k in ("prompt", "chosen", "rejected")} for p in pairs]
        kinds = {k: sum(p.kind == k for p in pairs) for k in dict.fromkeys(p.kind for p in pairs)}
    for row in rows:  # TRL tokenizes string prompts with special tokens: no second BOS
        row["prompt"] = trl_prompt(loaded.tokenizer, row["prompt"])
    if not rows:
        what = "lettered MCQ records (options and a gold letter)" if t.stage == "grpo" else "preference pairs or lettered MCQ records"
        raise ConfigError([ConfigProblem("data.train_files", f"the {t.stage} stage found no {what} in {', '.join(files)}",
                                         "give records with options and answer.letter, or a prompt/chosen/rejected file")], "train")
    return Dataset.from_list(rows), {"train": len(rows), "val": 0, **kinds, **counts}, read_files


def trl_args(cfg: RunConfig, run_dir: Path, device: str, precision: Any, progress: bool) -> Any:
    """The TRL config of ``train.stage`` from the train section (one field each; nothing set twice)."""
    from .setup import warmup_steps

    t, rl = cfg.train, cfg.train.rl
    common: dict[str, Any] = dict(
        output_dir=str(run_dir / "checkpoints"), per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, learning_rate=t.learning_rate, weight_decay=t.weight_decay,
        lr_scheduler_type="constant_with_warmup" if t.scheduler == "constant" else t.scheduler,
        warmup_steps=warmup_steps(t, t.max_steps) if t.max_steps > 0 else (t.warmup_steps or t.warmup_ratio),
        max_steps=t.max_steps, num_train_epochs=t.epochs, max_grad_norm=t.max_grad_norm, optim=OPTIMIZERS[t.optimizer],
        logging_steps=t.logging_steps, save_strategy="steps" if t.save_steps else "no", save_steps=t.save_steps or 1,
        save_total_limit=t.save_total_limit, seed=t.seed, data_seed=t.seed, activation_checkpointing=t.gradient_checkpointing,
        bf16=precision.compute == "bf16", fp16=precision.compute == "fp16", use_cpu=not device.startswith("cuda"),
        report_to=[], disable_tqdm=not progress, beta=rl.beta, remove_unused_columns=False,
    )
    if t.stage == "grpo":
        from trl import GRPOConfig

        from .rewards import reward_functions

        _, weights = reward_functions(rl.rewards, "plain", rl.max_completion_length)
        vllm = {"use_vllm": True, "vllm_mode": "colocate"} if rl.use_vllm else {}
        return GRPOConfig(**common, num_generations=rl.num_generations, max_completion_length=rl.max_completion_length,
                          temperature=rl.temperature, reward_weights=weights, top_k=0, shuffle_dataset=True, **vllm)
    if t.stage == "dpo":
        from trl import DPOConfig

        rpo = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, rl.sft_weight]} if rl.sft_weight else {}
        return DPOConfig(**common, max_length=cfg.data.max_length, **rpo)
    from trl.experimental.orpo import ORPOConfig

    return ORPOConfig(**common, max_length=cfg.data.max_length, max_completion_length=rl.max_completion_length)


def make_trainer(cfg: RunConfig, args: Any, loaded: Any, dataset: Any, fmt: str, callbacks: list[Any]) -> Any:
    """TRL's trainer for ``train.stage`` on the starting model with a new PEFT LoRA adapter (or all weights)."""
    from .setup import lora_config

    t = cfg.train
    peft = None if t.method == "full" else lora_config(loaded.model, t, loaded.source.preset)
    kw = dict(model=loaded.model, args=args, train_dataset=dataset, processing_class=loaded.tokenizer, peft_config=peft,
              callbacks=callbacks)
    if t.stage == "grpo":
        from trl import GRPOTrainer

        from .rewards import reward_functions

        fns, _ = reward_functions(t.rl.rewards, fmt, t.rl.max_completion_length)
        return GRPOTrainer(reward_funcs=fns, **kw)
    if t.stage == "dpo":
        from trl import DPOTrainer

        return DPOTrainer(**kw)
    from trl.experimental.orpo import ORPOTrainer

    return ORPOTrainer(**kw)


def _metrics_callback(metrics: Any) -> Any:
    """TRL's log lines -> RUN/metrics.jsonl + TensorBoard (loss as train_loss, each reward term on its own)."""
    from transformers import TrainerCallback

    class ToMetrics(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            logs = logs or {}
            values = {("train_loss" if k == "loss" else k.replace("/", "_")): float(v) for k, v in logs.items()
                      if isinstance(v, int | float) and k not in ("epoch", "step")}
            if values and "train_runtime" not in logs:  # the closing summary is the manifest's, not a curve point
                metrics.log(state.global_step, **values)

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.is_world_process_zero:  # seal TRL's checkpoint: a resume trusts only verified ones
                ckpt.mark_complete(Path(args.output_dir) / f"{ckpt.PREFIX}{state.global_step}", state.global_step)

    return ToMetrics()


def train_rl(cfg: RunConfig, paths: list[str] | None, run_dir: Path, resume: bool = False, progress: bool = True) -> Any:
    """Run ``train.stage`` (grpo / dpo / orpo) into ``run_dir``; returns a ``sft.TrainResult`` like SFT does."""
    from ..models.load import pick_device
    from ..utils.io import atomic_dir
    from .manifest import MetricsLog, hardware, peak_memory_mb, plot_loss_curve, write_manifest
    from .setup import count_parameters, resolve_precision
    from .sft import TrainResult

    t0 = time.perf_counter()
    t = cfg.train
    if sft_only := sft_only_settings(cfg):
        log.warning("%s: SFT settings, not used by the %s stage", ", ".join(sft_only), t.stage)
    device = pick_device("auto")
    precision = resolve_precision(cfg, device)
    latest = ckpt.latest_valid(run_dir / "checkpoints") if resume else None
    loaded, init_adapters, init_model, base = _start_model(cfg, run_dir, device, precision)
    fmt = cfg.model.resolved_reasoning_format(loaded.source.reasoning_format)
    dataset, counts, files = stage_data(cfg, paths, run_dir, loaded, fmt)
    start = int(latest.name[len(ckpt.PREFIX):]) if latest else 0
    metrics = MetricsLog(run_dir, start)
    trainer = make_trainer(cfg, trl_args(cfg, run_dir, device, precision, progress), loaded, dataset, fmt,
                           [_metrics_callback(metrics)])
    if not progress:  # without the bar, transformers prints every log dict instead; metrics.jsonl already has them
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    result = trainer.train(resume_from_checkpoint=str(latest) if latest else None)
    metrics.close()
    out = run_dir / ("model" if t.method == "full" else "adapter")
    with atomic_dir(out) as tmp:
        trainer.model.save_pretrained(tmp, safe_serialization=True)
        loaded.tokenizer.save_pretrained(tmp)
    rows = metrics.rows
    train_loss = next((r["train_loss"] for r in reversed(rows) if "train_loss" in r), None)
    trainable, total = count_parameters(trainer.model)
    wall = time.perf_counter() - t0
    runtime = float(result.metrics.get("train_runtime", wall))
    tokens = max((r.get("num_tokens", 0) for r in rows), default=0)  # TRL's count of tokens seen (GRPO, DPO)
    fields = {
        "run_id": f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}", "stage": t.stage, **base, "init_from": str(init_run(t.init_from)) if t.init_from else None,
        "init_adapters": init_adapters, "init_model": init_model, "reasoning_format": fmt, "system_prompt": cfg.data.system_prompt, "method": t.method,
        "output": out.name, "data_files": files, "data_manifest_sha256": files, "examples": counts,
        "rl": t.rl.model_dump(), "steps": trainer.state.global_step, "total_steps": trainer.state.max_steps,
        "hardware": hardware(device, 1), "precision": precision.to_dict(), "wall_time_s": round(wall, 2),
        "train_time_s": round(runtime, 2), "tokens_per_s": round(tokens / runtime, 1) if tokens and runtime else None,
        "peak_memory_mb": peak_memory_mb(), "trainable_params": trainable, "total_params": total, "train_loss": train_loss, "first_eval_loss": None, "final_eval_loss": None,
        "best_eval_loss": None, "resumed_from_step": start or None,
        "final_rewards": {k: v for k, v in rows[-1].items() if k.startswith("reward")} if rows else {},
    }
    title = f"{cfg.name}: {cfg.model.base} ({t.stage})"
    plot_loss_curve(rows, run_dir / "loss_curve.png", title)
    plot_loss_curve(rows, run_dir / "reward_curve.png", title, keys=("reward", "rewards_correct_mean", "rewards_format_mean",
                                                                     "rewards_accuracies", "rewards_margins"))
    write_manifest(run_dir, fields)
    return TrainResult(run_dir, out, fields["steps"], train_loss, None, None, None, fields["tokens_per_s"] or 0.0,
                       round(wall, 2), fields["peak_memory_mb"], manifest=fields)
