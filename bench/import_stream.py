"""Streaming import benchmark: peak RSS importing 10k vs 1M synthetic records, side by side.

Each size is imported in its own child process (``iter_records`` -> ``write_records`` with a
quarantine file, 1% of lines deliberately broken), so its peak RSS is its own. Flat memory
means the 1M run's peak RSS is close to the 10k run's, not 100x it.

    .venv/bin/python bench/import_stream.py                # 10k and 1M (about 4-6 minutes on 2 cores)
    .venv/bin/python bench/import_stream.py --sizes 10000 100000
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

SYMPTOMS = ["fever", "cough", "chest pain", "dyspnea", "headache", "abdominal pain", "rash", "syncope",
            "weight loss", "fatigue", "hematuria", "jaundice", "palpitations", "vomiting", "back pain"]


def write_synthetic(path: Path, n: int, seed: int = 0, bad_every: int = 100) -> None:
    """n lines in medical_o1 format; every ``bad_every``-th line is malformed JSON (to be quarantined)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            if bad_every and i % bad_every == bad_every - 1:
                f.write('{"Question": "truncated line\n')
                continue
            s = rng.sample(SYMPTOMS, 3)
            row = {
                "Question": f"Case {i}: a {rng.randint(18, 90)}-year-old patient presents with {s[0]}, {s[1]} and {s[2]}. "
                            "What is the most likely diagnosis and the next step?",
                "Complex_CoT": f"The combination of {s[0]} and {s[1]} suggests several causes; {s[2]} narrows it. " * 3,
                "Response": f"Most likely diagnosis number {i % 97}; next step: targeted work-up.",
            }
            f.write(json.dumps(row) + "\n")


def child(src: str, out_dir: str) -> None:
    """Import one file streaming; print JSON with counts, seconds and peak RSS (MiB)."""
    from medtune.data.importers import Quarantine, iter_records
    from medtune.data.io import write_records

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    with Quarantine(Path(out_dir) / "quarantine.jsonl", keep_entries=False) as q:
        stream = iter_records(src, "medical_o1", quarantine=q)
        written = write_records(Path(out_dir) / "records.jsonl", stream)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB
    assert stream.seen == written + q.count, "counts must add up"
    print(json.dumps({"seen": stream.seen, "written": written, "quarantined": q.count, "seconds": round(seconds, 1),
                      "peak_rss_mib": round(peak, 1), "rss_after_imports_mib": round(base_rss, 1)}))


def run_size(n: int, tmp: Path) -> dict:
    src = tmp / f"synthetic_{n}.jsonl"
    t0 = time.perf_counter()
    write_synthetic(src, n)
    gen_s = time.perf_counter() - t0
    out = tmp / f"out_{n}"
    out.mkdir()
    proc = subprocess.run([sys.executable, __file__, "--child", str(src), str(out)], capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(records=n, file_mib=round(src.stat().st_size / 2**20, 1), generate_s=round(gen_s, 1))
    src.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--child", nargs=2, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="medtune-bench-") as tmp:
        results = [run_size(n, Path(tmp)) for n in args.sizes]
    print("| records | file MiB | seen | accepted | quarantined | import s | records/s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['records']:,} | {r['file_mib']} | {r['seen']:,} | {r['written']:,} | {r['quarantined']:,} | "
              f"{r['seconds']} | {r['seen'] / max(r['seconds'], 1e-9):,.0f} | {r['peak_rss_mib']} |")
    first, last = results[0], results[-1]
    print(f"\npeak RSS ratio {last['records']:,} / {first['records']:,} records: "
          f"{last['peak_rss_mib'] / first['peak_rss_mib']:.2f}x for {last['records'] / first['records']:.0f}x the records")


if __name__ == "__main__":
    main()
