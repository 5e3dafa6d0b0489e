"""Training throughput: medtune (packing + assistant-only loss + loss-position logits) versus the
seeds' plain recipe (transformers Trainer + PEFT, per-batch right padding, no packing, loss on
the full sequence), same base model, same records, same LoRA, same batch size and step count.

Each side runs in its own subprocess (so peak RSS is its own), one after the other, in one run:

    .venv/bin/python bench/train_throughput.py --steps 6 --batch-size 4 --max-length 512
    python bench/train_throughput.py --device cuda --steps 50 --batch-size 8 --max-length 1024   # bf16 on a GPU

Reported per side: trained (non-padding) tokens/s over the optimizer steps, padding share,
and peak memory: RSS (ru_maxrss of the subprocess, model load included) on CPU, peak CUDA
memory allocated on a GPU (both sides in bf16 there). The ratio is medtune / plain.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
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

    cfg = load_config(None, [f"model.base={args.base}", f"train.max_steps={args.steps}", f"train.batch_size={args.batch_size}",
                             f"data.max_length={args.max_length}", "data.val_fraction=0.0", "train.eval_steps=0",
                             f"train.lora.r={LORA['r']}", f"train.lora.alpha={LORA['alpha']}", f"train.lora.dropout={LORA['dropout']}",
                             f"train.lora.target_modules=[{','.join(TARGETS)}]", "train.learning_rate=1e-4", "train.logging_steps=1",
                             f"train.precision={'bf16' if args.device == 'cuda' else 'fp32'}"])
    res = train(cfg, args.records, Path(args.workdir) / "medtune_run", progress=False)
    return {"tokens": res.manifest["tokens_trained"], "train_time_s": res.manifest["train_time_s"], "padding_share": 0.0}


def run_plain(args) -> dict:
    """The seeds' recipe: Trainer + PEFT, right padding per batch, labels = input ids (pad masked)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from medtune.data.records import Record
    from medtune.data.render import build_messages
    from medtune.models.load import load_model

    loaded = load_model(args.base, device=args.device)
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
                              use_cpu=args.device == "cpu", bf16=args.device == "cuda", seed=42, dataloader_num_workers=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=targs, train_dataset=ds,
                      data_collator=DataCollatorForLanguageModeling(tok, mlm=False))
    out = trainer.train()
    return {"tokens": counts["real"], "train_time_s": out.metrics["train_runtime"],
            "padding_share": 1 - counts["real"] / max(counts["slots"], 1)}


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    result = (run_medtune if args.mode == "medtune" else run_plain)(args)
    result["tokens_per_s"] = result["tokens"] / result["train_time_s"]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.device == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    Path(args.json).write_text(json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="smollm2-135m")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--cases", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: both sides in bf16 on the GPU")
    p.add_argument("--mode", choices=["medtune", "plain"], help=argparse.SUPPRESS)
    p.add_argument("--records", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.mode:
        return child(args)
    work = Path(tempfile.mkdtemp(prefix="medtune-bench-"))
    records = work / "records.jsonl"
    mix = make_records(records, args.cases, 0, args.max_length, args.base)
    print(f"records: {mix}")
    results = {}
    for mode in ("plain", "medtune"):
        out = work / f"{mode}.json"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--mode", mode, "--records", str(records), "--workdir", str(work),
                        "--json", str(out), "--base", args.base, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                        "--max-length", str(args.max_length), "--threads", str(args.threads), "--device", args.device], check=True)
        results[mode] = {**json.loads(out.read_text()), "wall_s": time.perf_counter() - t0}
        print(mode, json.dumps(results[mode]))
    ratio = results["medtune"]["tokens_per_s"] / results["plain"]["tokens_per_s"]
    key = "peak_cuda_mb" if args.device == "cuda" else "peak_rss_mb"
    mem = results["medtune"][key] / results["plain"][key]
    label = "peak CUDA MB" if args.device == "cuda" else "peak RSS MB"
    print(f"\n| side | trained tokens/s | padding share | {label} |\n|---|---|---|---|")
    for mode in ("plain", "medtune"):
        r = results[mode]
        print(f"| {mode} | {r['tokens_per_s']:.1f} | {r['padding_share']:.1%} | {r[key]:.0f} |")
    print(f"\nmedtune / plain: {ratio:.2f}x trained tokens/s, {mem:.2f}x {label} ({args.device}, "
          f"{args.steps} steps, batch {args.batch_size}, max_length {args.max_length}, {args.threads} threads, base {args.base})")


if __name__ == "__main__":
    main()
