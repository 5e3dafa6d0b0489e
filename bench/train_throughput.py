"""Training throughput: medtune (packing + assistant-only loss + loss-position logits, `auto`
precision) versus the seeds' plain recipe (transformers Trainer + PEFT, per-batch right padding,
no packing, loss on the full sequence) in fp32 and with ``bf16=True``; same base model, same
records, same LoRA, same batch size and step count.

Each side runs in its own subprocess (so peak RSS is its own), one after the other, in one run:

    .venv/bin/python bench/train_throughput.py                       # CPU: plain fp32, plain bf16, medtune
    .venv/bin/python bench/train_throughput.py --rounds 3            # alternate the sides 3 times, median
    python bench/train_throughput.py --device cuda --steps 50 --batch-size 8 --max-length 1024   # GPU: plain bf16 vs medtune

On a CPU with native bf16 medtune's `auto` is bf16 autocast with fp32 adapters and optimizer
states over a bf16 frozen base (``--medtune-override model.dtype=float32`` keeps an fp32 base,
``train.precision=fp32`` runs it in fp32). The plain Trainer loads fp32 weights on a CPU; its
``bf16=True`` is autocast over them. Reported per side: trained (non-padding) tokens/s over the
optimizer steps, padding share, and peak memory: RSS (ru_maxrss of the subprocess, model load
included) on CPU, peak CUDA memory allocated on a GPU. Ratios are medtune / each plain side.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LORA = {"r": 16, "alpha": 32, "dropout": 0.05}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_records(path: Path, n: int, seed: int, max_length: int, base: str) -> dict:
    """A realistic length mix: synthetic cases compacted to 2-6 sentences (~150-450 tokens)."""
    from medtune.data.render import render_example
    from medtune.models.load import load_tokenizer
    from medtune.synth.demo import compact_record
    from medtune.synth.engine import generate_records

    rng = random.Random(seed)
    tok = load_tokenizer(base)
    lengths, rows = [], []
    for rec in generate_records(n, seed, tasks=["diagnosis", "mcq", "management"]):
        k = rng.choice([2, 3, 4, 6])
        short = compact_record(rec, sentences=k, findings=2 * k)
        n_tok = len(render_example(tok, short, "sections", max_length=10_000))
        if n_tok <= max_length:  # both sides see exactly the same, uncut samples
            rows.append(short.model_dump_json())
            lengths.append(n_tok)
    path.write_text("\n".join(rows) + "\n")
    lengths.sort()
    return {"records": len(rows), "p10": lengths[len(lengths) // 10], "median": lengths[len(lengths) // 2],
            "p90": lengths[9 * len(lengths) // 10], "max": lengths[-1]}


def run_medtune(args) -> dict:
    from medtune.config import load_config
    from medtune.train import train

    overrides = [f"model.base={args.base}", f"train.max_steps={args.steps}", f"train.batch_size={args.batch_size}",
                 f"data.max_length={args.max_length}", "data.val_fraction=0.0", "train.eval_steps=0",
                 f"train.lora.r={LORA['r']}", f"train.lora.alpha={LORA['alpha']}", f"train.lora.dropout={LORA['dropout']}",
                 f"train.lora.target_modules=[{','.join(TARGETS)}]", "train.learning_rate=1e-4", "train.logging_steps=1",
                 *args.medtune_override]
    res = train(load_config(None, overrides), args.records, Path(args.workdir) / "medtune_run", progress=False)
    m = res.manifest
    return {"tokens": m["tokens_trained"], "train_time_s": m["train_time_s"], "padding_share": 0.0,
            "precision": f"{m['precision']['compute']} compute, {m['precision']['weights']} base", "plan": m["forward_plan"]}


def run_plain(args, bf16: bool) -> dict:
    """The seeds' recipe: Trainer + PEFT, right padding per batch, labels = input ids (pad masked).

    The model is loaded in fp32 on a CPU (``from_pretrained``'s dtype for this checkpoint); ``bf16=True``
    is the Trainer's bf16 autocast over those fp32 weights. On CUDA it loads in bf16, as before.
    """
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from medtune.data.records import Record
    from medtune.data.render import build_messages
    from medtune.models.load import load_model

    loaded = load_model(args.base, device=args.device, dtype="auto" if args.device == "cuda" else "float32")
    tok = loaded.tokenizer
    recs = [Record.model_validate_json(line) for line in Path(args.records).read_text().splitlines() if line.strip()]
    texts = [tok.apply_chat_template(build_messages(r, "sections"), tokenize=False) for r in recs]
    ds = Dataset.from_dict({"text": texts}).map(
        lambda b: tok(b["text"], add_special_tokens=False, truncation=True, max_length=args.max_length), batched=True,
        remove_columns=["text"])
    model = get_peft_model(loaded.model, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                                    target_modules=TARGETS, task_type="CAUSAL_LM"))
    counts = {"real": 0, "slots": 0}

    def count(_module, _args, kwargs):
        mask = kwargs.get("attention_mask")
        if mask is not None and torch.is_grad_enabled():
            counts["real"] += int(mask.sum())
            counts["slots"] += mask.numel()

    model.register_forward_pre_hook(count, with_kwargs=True)
    targs = TrainingArguments(output_dir=str(Path(args.workdir) / "plain_run"), per_device_train_batch_size=args.batch_size,
                              max_steps=args.steps, learning_rate=1e-4, logging_steps=1, save_strategy="no", report_to=[],
                              use_cpu=args.device == "cpu", bf16=bf16, seed=42, dataloader_num_workers=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=targs, train_dataset=ds,
                      data_collator=DataCollatorForLanguageModeling(tok, mlm=False))
    out = trainer.train()
    return {"tokens": counts["real"], "train_time_s": out.metrics["train_runtime"],
            "padding_share": 1 - counts["real"] / max(counts["slots"], 1),
            "precision": "bf16 autocast, fp32 weights" if bf16 and args.device == "cpu" else ("bf16" if bf16 else "fp32")}


SIDES = {"plain_fp32": lambda a: run_plain(a, bf16=False), "plain_bf16": lambda a: run_plain(a, bf16=True),
         "medtune": run_medtune}


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    result = SIDES[args.mode](args)
    result["tokens_per_s"] = result["tokens"] / result["train_time_s"]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.device == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    Path(args.json).write_text(json.dumps(result))


def run_side(args, mode: str, records: Path, work: Path) -> dict:
    out = work / f"{mode}.json"
    cmd = [sys.executable, __file__, "--mode", mode, "--records", str(records), "--workdir", str(work), "--json", str(out),
           "--base", args.base, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--max-length", str(args.max_length), "--threads", str(args.threads), "--device", args.device]
    cmd += [f"--medtune-override={o}" for o in args.medtune_override]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return {**json.loads(out.read_text()), "wall_s": time.perf_counter() - t0}


def report(results: dict[str, list[dict]], args) -> list[str]:
    """Markdown table (median tokens/s over rounds) and the ratios of medtune to each plain side."""
    key = "peak_cuda_mb" if args.device == "cuda" else "peak_rss_mb"
    label = "peak CUDA MB" if args.device == "cuda" else "peak RSS MB"
    med = {m: statistics.median(r["tokens_per_s"] for r in runs) for m, runs in results.items()}
    mem = {m: max(r[key] for r in runs) for m, runs in results.items()}
    lines = [f"| side | precision | trained tokens/s | padding share | {label} |", "|---|---|---|---|---|"]
    for mode, runs in results.items():
        lines.append(f"| {mode} | {runs[-1]['precision']} | {med[mode]:.1f} | {runs[-1]['padding_share']:.1%} | {mem[mode]:.0f} |")
    lines.append("")
    for mode in [m for m in results if m != "medtune"]:
        if "medtune" in results:
            lines.append(f"medtune / {mode}: {med['medtune'] / med[mode]:.2f}x trained tokens/s, "
                         f"{mem['medtune'] / mem[mode]:.2f}x {label}")
    lines.append(f"({args.device}, {args.steps} steps, batch {args.batch_size}, max_length {args.max_length}, "
                 f"{args.threads} threads, base {args.base}, {args.rounds} round(s), median tokens/s, max memory)")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="smollm2-135m")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--cases", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1, help="run the sides this many times, alternating; report the median")
    p.add_argument("--sides", nargs="+", choices=list(SIDES), default=None,
                   help="default: plain_fp32 plain_bf16 medtune on a CPU, plain_bf16 medtune on CUDA")
    p.add_argument("--medtune-override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for the medtune side, e.g. model.dtype=float32")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: the plain side in bf16 on the GPU")
    p.add_argument("--json-out", help="also write the per-run results here")
    p.add_argument("--mode", choices=list(SIDES), help=argparse.SUPPRESS)
    p.add_argument("--records", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.mode:
        return child(args)
    sides = args.sides or (["plain_bf16", "medtune"] if args.device == "cuda" else ["plain_fp32", "plain_bf16", "medtune"])
    work = Path(tempfile.mkdtemp(prefix="medtune-bench-"))
    records = work / "records.jsonl"
    mix = make_records(records, args.cases, 0, args.max_length, args.base)
    print(f"records: {mix}")
    results: dict[str, list[dict]] = {m: [] for m in sides}
    for rnd in range(args.rounds):
        for mode in sides:
            results[mode].append(run_side(args, mode, records, work))
            print(f"round {rnd + 1}: {mode} {json.dumps(results[mode][-1])}", flush=True)
    lines = report(results, args)
    print("\n" + "\n".join(lines))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"records": mix, "results": results, "table": lines}, indent=2))


if __name__ == "__main__":
    main()
