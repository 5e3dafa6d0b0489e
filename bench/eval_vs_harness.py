"""medtune's loglik evaluation vs lm-evaluation-harness: same MedQA items, same prompts, fp32 and bf16.

    .venv/bin/python bench/eval_vs_harness.py --data-root ../shared/data                # 300 items
    .venv/bin/python bench/eval_vs_harness.py --data-root ../shared/data --items 150 --rounds 2

Sides, each in its own subprocess (peak RSS is its own), one after the other:

  medtune_fp32     `medtune eval --protocol loglik` code path (TransformersBackend + run_loglik), weights fp32
  medtune_auto     the same in `auto` precision: bf16 weights on CPUs with native bf16 (models/precision.py)
  harness_default  lm-eval's HFLM with the harness's default dtype (the checkpoint's: fp32 for the embedded model)
  harness_bf16     lm-eval's HFLM with dtype=bfloat16

lm-eval is not a medtune dependency: the bench builds a side venv (``--venv``, default
/work/.lmeval-venv) on first use: ``python -m venv``, a ``.pth`` file that puts medtune's venv
site-packages on its path, then ``pip install lm-eval==0.4.13`` under a constraints file that pins
every package medtune's venv already has (so torch and transformers are shared, never reinstalled).

The harness reads a local task (YAML in a temp folder): ``dataset_path: json`` over a JSONL of the
same items whose ``context`` is medtune's exact harness prompt (``benchmarks.loglik_request``:
``Question: ...\\nA. ..\\nD. ..\\nAnswer:``), choices = the option letters after a space. Both sides
batch 8 requests; model load is timed apart from scoring. Reported per side: scoring seconds,
items/s, peak RSS, accuracy with its Wilson 95% interval; and between sides: letter agreement, the
share of items whose options are ranked in the same order, and the mean absolute difference of the
option log-probabilities.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LM_EVAL_PIN = "lm-eval==0.4.13"
SIDES = ("medtune_fp32", "medtune_auto", "harness_default", "harness_bf16")
TASK = "medtune_bench_medqa"


def ensure_harness_venv(venv: Path) -> Path:
    """The side venv's python, with lm-eval installed over medtune's own packages (built once)."""
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import lm_eval"], capture_output=True).returncode == 0:
        return python
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "medtune_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                            text=True, check=True).stdout
    constraints = venv / "constraints.txt"
    constraints.write_text("\n".join(line for line in frozen.splitlines() if "==" in line) + "\n")
    subprocess.run([python, "-m", "pip", "install", "--quiet", LM_EVAL_PIN, "-c", str(constraints)], check=True)
    return python


def write_items(data_root: str, n: int, folder: Path) -> Path:
    """The first n MedQA items as medtune reads them, with medtune's harness prompt, for both sides."""
    from medtune.eval.benchmarks import get_benchmark, load_benchmark_records, loglik_request
    from medtune.eval.runners import gold_letter

    spec = get_benchmark("medqa")
    rows = []
    for r in load_benchmark_records(spec, data_root, limit=n):
        context, choices = loglik_request(spec, r)
        letters = list(r.options)
        rows.append({"id": r.id, "context": context, "choices": [c.strip() for c in choices],
                     "gold": letters.index(gold_letter(r))})
    path = folder / "items.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in rows))
    letters = rows[0]["choices"]
    assert all(x["choices"] == letters for x in rows), "the task YAML below assumes the same letters for every item"
    (folder / f"{TASK}.yaml").write_text(
        f"task: {TASK}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {path}\ntest_split: test\n"
        "output_type: multiple_choice\ndoc_to_text: \"{{context}}\"\n"
        f"doc_to_choice: {json.dumps(letters)}\ndoc_to_target: gold\ntarget_delimiter: \" \"\n"
        "metric_list:\n  - metric: acc\n  - metric: acc_norm\n")
    return path


def run_medtune(args, items: list[dict]) -> dict:
    from medtune.eval.backends import TransformersBackend
    from medtune.eval.benchmarks import get_benchmark, load_benchmark_records
    from medtune.eval.runners import run_loglik
    from medtune.models.load import load_model

    spec = get_benchmark("medqa")
    records = load_benchmark_records(spec, args.data_root, limit=len(items))
    t0 = time.perf_counter()
    loaded = load_model(args.model, device="cpu", dtype="float32" if args.side == "medtune_fp32" else "auto")
    backend = TransformersBackend(loaded.model, loaded.tokenizer, batch_size=args.batch_size)
    t1 = time.perf_counter()
    rows = run_loglik(backend, spec, records)
    t2 = time.perf_counter()
    letters = list(records[0].options)
    return {"dtype": backend.dtype, "load_s": t1 - t0, "score_s": t2 - t1,
            "pred": [letters.index(r["pred"]) for r in rows],
            "logprobs": [list(r["option_logprobs"].values()) for r in rows]}


def run_harness(args, items: list[dict]) -> dict:
    """lm-eval's own API: HFLM (loaded once, timed apart) + simple_evaluate on the local task."""
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    t0 = time.perf_counter()
    kwargs = {"dtype": "bfloat16"} if args.side == "harness_bf16" else {}
    lm = HFLM(pretrained=args.model_dir, device="cpu", batch_size=args.batch_size, **kwargs)
    t1 = time.perf_counter()
    out = simple_evaluate(model=lm, tasks=[TASK], task_manager=TaskManager(include_path=args.task_dir),
                          log_samples=True, num_fewshot=0)
    t2 = time.perf_counter()
    samples = sorted(out["samples"][TASK], key=lambda s: s["doc_id"])
    logprobs = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
    return {"dtype": str(lm.model.dtype).removeprefix("torch."), "load_s": t1 - t0, "score_s": t2 - t1,
            "pred": [max(range(len(lp)), key=lp.__getitem__) for lp in logprobs], "logprobs": logprobs,
            "harness_acc": out["results"][TASK]["acc,none"], "torch": torch.__version__}


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    items = [json.loads(line) for line in Path(args.items).read_text().splitlines()]
    result = (run_medtune if args.side.startswith("medtune") else run_harness)(args, items)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.json).write_text(json.dumps(result))


def _ranking(logprobs: list[float]) -> list[int]:
    return sorted(range(len(logprobs)), key=lambda i: -logprobs[i])


def compare(results: dict[str, list[dict]], items: list[dict]) -> list[str]:
    """Markdown: per side (median over rounds) and agreement of each side with medtune_fp32."""
    from medtune.eval.metrics import wilson_interval

    n, gold = len(items), [x["gold"] for x in items]
    score = {s: statistics.median(r["score_s"] for r in runs) for s, runs in results.items()}
    lines = ["| side | dtype | scoring s | items/s | load s | peak RSS MB | accuracy (95% CI) |", "|---|---|---|---|---|---|---|"]
    for side, runs in results.items():
        last = runs[-1]
        k = sum(p == g for p, g in zip(last["pred"], gold))
        lines.append(f"| {side} | {last['dtype']} | {score[side]:.1f} | {n / score[side]:.2f} | "
                     f"{statistics.median(r['load_s'] for r in runs):.1f} | {max(r['peak_rss_mb'] for r in runs):.0f} | "
                     f"{k / n:.3f} ({wilson_interval(k, n)[0]:.3f}-{wilson_interval(k, n)[1]:.3f}) |")
    lines += ["", "| pair | letter agreement | same ranking of all options | mean abs. log-prob difference |",
              "|---|---|---|---|"]
    pairs = [("medtune_auto", "medtune_fp32"), ("harness_default", "medtune_fp32"), ("harness_bf16", "medtune_auto"),
             ("harness_bf16", "harness_default")]
    for a, b in [(a, b) for a, b in pairs if a in results and b in results]:
        pa, pb = results[a][-1], results[b][-1]
        agree = sum(x == y for x, y in zip(pa["pred"], pb["pred"]))
        diffs = [abs(x - y) for la, lb in zip(pa["logprobs"], pb["logprobs"]) for x, y in zip(la, lb)]
        ranked = sum(_ranking(la) == _ranking(lb) for la, lb in zip(pa["logprobs"], pb["logprobs"]))
        lines.append(f"| {a} vs {b} | {agree}/{n} ({agree / n:.1%}) | {ranked}/{n} | {sum(diffs) / len(diffs):.4f} |")
    lines.append("")
    for harness in [h for h in ("harness_default", "harness_bf16") if h in score]:
        for ours in [m for m in ("medtune_auto", "medtune_fp32") if m in score]:
            lines.append(f"{ours} is {score[harness] / score[ours]:.2f}x faster than {harness} (scoring time, median)")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=os.environ.get("MEDTUNE_DATA_ROOT", "../shared/data"))
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1, help="run every side this many times, alternating; median time")
    ap.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    ap.add_argument("--model", default="smollm2-135m", help="a preset or local HF folder (the harness gets its folder)")
    ap.add_argument("--venv", default="/work/.lmeval-venv", help="side venv for lm-eval (created on first use)")
    ap.add_argument("--json-out", help="also write every side's raw results here")
    for hidden in ("--side", "--items-file", "--json", "--task-dir", "--model-dir"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        args.items = args.items_file
        return child(args)
    from medtune.models.source import ensure_local, resolve_source

    model_dir = ensure_local(resolve_source(args.model))
    harness_python = ensure_harness_venv(Path(args.venv)) if any(s.startswith("harness") for s in args.sides) else None
    work = Path(tempfile.mkdtemp(prefix="medtune-harness-"))
    items_path = write_items(args.data_root, args.items, work)
    items = [json.loads(line) for line in items_path.read_text().splitlines()]
    print(f"{len(items)} MedQA items, model {model_dir}, {args.threads} threads, batch {args.batch_size}", flush=True)
    results: dict[str, list[dict]] = {s: [] for s in args.sides}
    for rnd in range(args.rounds):
        for side in args.sides:
            python = harness_python if side.startswith("harness") else sys.executable
            out = work / f"{side}.json"
            subprocess.run([str(python), __file__, "--side", side, "--items-file", str(items_path), "--json", str(out),
                            "--task-dir", str(work), "--model-dir", str(model_dir), "--model", args.model,
                            "--data-root", args.data_root, "--threads", str(args.threads),
                            "--batch-size", str(args.batch_size)], check=True)
            results[side].append(json.loads(out.read_text()))
            r = results[side][-1]
            print(f"round {rnd + 1}: {side} ({r['dtype']}) scoring {r['score_s']:.1f} s, load {r['load_s']:.1f} s, "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    lines = compare(results, items)
    print("\n" + "\n".join(lines))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"items": len(items), "results": results, "table": lines}))


if __name__ == "__main__":
    main()
