"""Synthetic-case throughput and memory: 10,000 cases with all four tasks.

Usage: .venv/bin/python bench/synth_throughput.py [--n 10000] [--seed 0]

Two passes in one process:
  1. ``run_synth`` end to end (records.jsonl + cases.jsonl + dataset card, atomic writes):
     wall time, cases/s, records/s -- the acceptance number (<= 60 s for 10,000 cases).
  2. the same stream, sampling the process RSS every 1,000 cases: memory is flat when the
     RSS after the last 1,000 cases is within a few MiB of the RSS after the first 1,000.
Prints a Markdown block for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import psutil

from medtune.synth import run_synth
from medtune.synth.engine import iter_cases_and_records


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    proc = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = run_synth(Path(tmp) / "run", args.n, args.seed)
        wall = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (Path(tmp) / "run").iterdir()) / 2**20
    rss: list[float] = []
    sink = 0
    for i, (case, records) in enumerate(iter_cases_and_records(args.n, args.seed + 1), 1):
        sink += len(case["vignette"]) + sum(len(r.model_dump_json()) for r in records)
        if i % 1000 == 0:
            rss.append(proc.memory_info().rss / 2**20)
    print("## Synthetic cases (bench/synth_throughput.py)\n")
    print(f"Command: `.venv/bin/python bench/synth_throughput.py --n {args.n} --seed {args.seed}` "
          f"({platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, Python {platform.python_version()})\n")
    print("| measure | value |\n|---|---:|")
    print(f"| cases | {result['cases']:,} |\n| records (4 tasks) | {result['records']:,} |")
    print(f"| run_synth wall time | {wall:.1f} s |\n| cases/s | {result['cases'] / wall:,.0f} |")
    print(f"| records/s | {result['records'] / wall:,.0f} |\n| output size | {size:.1f} MiB |")
    print(f"| RSS after first 1,000 cases | {rss[0]:.1f} MiB |\n| RSS after last 1,000 cases | {rss[-1]:.1f} MiB |")
    print(f"| RSS growth last/first | {rss[-1] / rss[0]:.3f}x ({rss[-1] - rss[0]:+.1f} MiB) |")
    print(f"\nRSS every 1,000 cases (MiB): {', '.join(f'{x:.0f}' for x in rss)}")


if __name__ == "__main__":
    main()
