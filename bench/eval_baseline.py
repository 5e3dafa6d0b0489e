"""Zero-shot loglik baseline of a model on full benchmarks (lm-evaluation-harness protocol).

    nice .venv/bin/python bench/eval_baseline.py --data-root ../shared/data \
        --benchmarks medqa pubmedqa --model smollm2-135m

Prints and writes acc and acc_norm with Wilson 95% intervals, item counts, seconds and
the exact protocol, so the numbers can be pasted into docs/benchmarks.md with their
protocol. Runs through the same code as `medtune eval run --protocol loglik`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from medtune.eval.backends import TransformersBackend
from medtune.eval.benchmarks import get_benchmark, load_benchmark_records
from medtune.eval.evaluate import evaluate, summarize
from medtune.eval.report import write_report
from medtune.eval.store import PredictionStore
from medtune.models.load import load_model
from medtune.utils.io import atomic_write_json, atomic_write_jsonl
from medtune.utils.paths import medtune_home


def merge_shards(spec, records, work: Path, shards: int, model: str) -> dict | None:
    """Once every shard folder is complete, write the merged folder ({name}-loglik) and return its summary."""
    rows = []
    for k in range(shards):
        rows += PredictionStore(work / f"{spec.name}-loglik-shard{k}of{shards}" / "predictions.jsonl").load()
    if {r["id"] for r in rows} != {r.id for r in records}:
        return None
    folder = work / f"{spec.name}-loglik"
    atomic_write_jsonl(folder / "predictions.jsonl", rows)
    summary = summarize(rows, spec, "loglik", model=model)
    atomic_write_json(folder / "summary.json", summary)
    write_report(folder)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--benchmarks", nargs="+", default=["medqa", "pubmedqa"])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 avoids barrier stalls on a crowded CPU)")
    ap.add_argument("--work-dir", default=str(medtune_home() / "bench" / "eval_baseline"), help="resumable evaluation folders, one per benchmark")
    ap.add_argument("--shards", type=int, default=1, help="split each benchmark into N interleaved shards (one process each)")
    ap.add_argument("--shard", type=int, default=0, help="which shard this process runs (0-based)")
    ap.add_argument("--out", default=str(medtune_home() / "bench" / "eval_baseline.json"))
    args = ap.parse_args()

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    loaded = load_model(args.model, device="cpu")
    backend = TransformersBackend(loaded.model, loaded.tokenizer, batch_size=args.batch_size)
    results = {"model": args.model, "device": loaded.device, "dtype": str(loaded.dtype), "benchmarks": {}}
    for name in args.benchmarks:
        spec = get_benchmark(name)
        records = load_benchmark_records(spec, args.data_root, limit=args.limit)
        work = Path(args.work_dir)
        folder = work / (f"{name}-loglik" if args.shards == 1 else f"{name}-loglik-shard{args.shard}of{args.shards}")
        t0 = time.perf_counter()
        summary = evaluate(backend, spec, records[args.shard :: args.shards], folder, protocol="loglik",
                           chunk_size=64, write_report=args.shards == 1)
        seconds = time.perf_counter() - t0
        if args.shards > 1:
            summary = merge_shards(spec, records, work, args.shards, args.model)
            if summary is None:
                print(f"{name}: shard {args.shard} done; other shards still running", flush=True)
                continue
            folder = work / f"{name}-loglik"
        acc, acc_norm = summary["accuracy"], summary["accuracy_norm"]
        results["benchmarks"][name] = {
            "protocol": f"loglik zero-shot, lm-evaluation-harness '{spec.loglik.harness_task}' prompt; argmax summed log-prob (acc) and per-char normalised (acc_norm)",
            "items": len(records), "chance": spec.chance, "acc": acc, "acc_norm": acc_norm,
            "ece": summary["calibration"]["ece"], "by_subject": summary["by_subject"],
            "seconds_this_session": round(seconds, 1), "report": str(folder / "report.html"),
        }
        print(json.dumps({name: results["benchmarks"][name]}, indent=2), flush=True)
        atomic_write_json(args.out, results)  # after each benchmark, so a long run leaves partial results


if __name__ == "__main__":
    main()
