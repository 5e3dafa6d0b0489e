"""Zero-shot loglik baseline of a model on full benchmarks (lm-evaluation-harness protocol).

    nice .venv/bin/python bench/eval_baseline.py --data-root ../shared/data \
        --benchmarks medqa pubmedqa --model smollm2-135m --out bench/results/eval_baseline.json

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
from medtune.eval.evaluate import evaluate
from medtune.models.load import load_model
from medtune.utils.io import atomic_write_json
from medtune.utils.paths import medtune_home


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--benchmarks", nargs="+", default=["medqa", "pubmedqa"])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 avoids barrier stalls on a crowded CPU)")
    ap.add_argument("--work-dir", default=str(medtune_home() / "bench" / "eval_baseline"), help="resumable evaluation folders, one per benchmark")
    ap.add_argument("--out", default="bench/results/eval_baseline.json")
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
        t0 = time.perf_counter()
        summary = evaluate(backend, spec, records, Path(args.work_dir) / f"{name}-loglik", protocol="loglik", chunk_size=64)
        seconds = time.perf_counter() - t0
        acc, acc_norm = summary["accuracy"], summary["accuracy_norm"]
        results["benchmarks"][name] = {
            "protocol": f"loglik zero-shot, lm-evaluation-harness '{spec.loglik.harness_task}' prompt; argmax summed log-prob (acc) and per-char normalised (acc_norm)",
            "items": len(records), "chance": spec.chance, "acc": acc, "acc_norm": acc_norm,
            "ece": summary["calibration"]["ece"], "by_subject": summary["by_subject"],
            "seconds_this_session": round(seconds, 1), "report": str(Path(args.work_dir) / f"{name}-loglik" / "report.html"),
        }
        print(json.dumps({name: results["benchmarks"][name]}, indent=2), flush=True)
        atomic_write_json(args.out, results)  # after each benchmark, so a long run leaves partial results


if __name__ == "__main__":
    main()
