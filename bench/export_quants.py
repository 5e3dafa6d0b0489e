"""Export quants side by side: file size, llama.cpp tokens/s vs transformers fp32, MedQA accuracy.

    .venv/bin/python bench/export_quants.py [--run RUN | --model HF_DIR] [--items 200]
        [--quants f16,q8_0,q4_k_m,q5_k_m] [--data ../shared/data/medqa/us_4options_test.jsonl]

Default model: the embedded SmolLM2-135M-Instruct with a LoRA adapter on every linear
layer (lora_B ~ N(0, 0.02), r=8, seed 1), built in a temp folder and exported with
``export_run`` exactly like a trained run, so merge + convert + quantize are measured too.

Accuracy protocol (same for every row, so rows are comparable; not a leaderboard number):
first N items of the MedQA US 4-option test file, 0-shot, user turn from
medtune.data.render.build_user_prompt, the model's chat template with generation prompt,
then the text "Answer:"; prediction = the option letter (" A".." D" tokens) with the
highest next-token logit. The same token ids are fed to transformers (fp32) and llama.cpp.
Throughput: 64 greedy tokens after a fixed ~60-token prompt, batch 1, torch 2 threads, llama.cpp half the cores
(verify.llama_threads), measured after all accuracy runs in --rounds interleaved rounds (HF, then each GGUF, again);
the median of each is reported, so a burst of load hits every row alike.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "unit" / "export"))

LETTERS = ["A", "B", "C", "D"]


def items(path: Path, n: int):
    from medtune.data.importers import iter_records

    out = []
    for r in iter_records(path):
        if r.answer and r.answer.letter in LETTERS and set(r.options) == set(LETTERS):
            out.append(r)
        if len(out) == n:
            break
    return out


def encode_items(tok, records):
    from medtune.data.render import build_user_prompt

    rows = []
    for r in records:
        text = tok.apply_chat_template([{"role": "user", "content": build_user_prompt(r)}], tokenize=False,
                                       add_generation_prompt=True) + "Answer:"
        rows.append((tok(text, add_special_tokens=False)["input_ids"], r.answer.letter))
    letter_ids = [tok(f" {x}", add_special_tokens=False)["input_ids"][-1] for x in LETTERS]
    return rows, letter_ids


def hf_letters(model, rows, letter_ids):
    import torch

    preds = []
    with torch.no_grad():
        for ids, _ in rows:
            logits = model(torch.tensor([ids])).logits[0, -1, letter_ids]
            preds.append(LETTERS[int(logits.argmax())])
    return preds


def gguf_letters(llm, rows, letter_ids):
    preds = []
    for ids, _ in rows:
        llm.reset()
        llm.eval(ids)
        preds.append(LETTERS[int(np.argmax(llm.scores[llm.n_tokens - 1][letter_ids]))])
    return preds


def hf_tokens_per_s(model, tok, prompt_ids, n=64):
    import torch

    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        model.generate(ids, max_new_tokens=4, do_sample=False)  # warm-up
        t = time.perf_counter()
        model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    return n / (time.perf_counter() - t)


def gguf_tokens_per_s(llm, prompt_ids, n=64):
    llm.reset()
    llm.eval(prompt_ids[:8])  # warm-up
    llm.reset()
    t = time.perf_counter()
    llm.eval(prompt_ids)
    for _ in range(n):
        llm.eval([int(np.argmax(llm.scores[llm.n_tokens - 1]))])
    return n / (time.perf_counter() - t)


def measure_speeds(model, tok, table: list[dict], prompt: list[int], rounds: int) -> list[float]:
    """Median tokens/s of each row over ``rounds`` interleaved rounds (row 0 = HF, the others GGUF paths)."""
    from llama_cpp import Llama

    from medtune.export.verify import llama_threads

    runs: list[list[float]] = [[] for _ in table]
    for _ in range(rounds):
        runs[0].append(hf_tokens_per_s(model, tok, prompt))
        for i, r in enumerate(table[1:], start=1):
            llm = Llama(r["path"], n_ctx=512, verbose=False, n_threads=llama_threads())
            try:
                runs[i].append(gguf_tokens_per_s(llm, prompt))
            finally:
                llm.close()
    return [float(np.median(x)) for x in runs]


def _cell(v) -> str:
    return "-" if v is None else str(v)


def prepare(args, work: Path) -> Path:
    from export_helpers import build_run

    from medtune.models.embedded import materialize_embedded

    if args.run or args.model:
        return Path(args.run or args.model)
    return build_run(materialize_embedded(), work / "run", r=8, b_std=0.02, base_spec="smollm2-135m")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run")
    ap.add_argument("--model")
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--quants", default="f16,q8_0,q4_k_m,q5_k_m")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "medqa" / "us_4options_test.jsonl"))
    ap.add_argument("--json", help="Also write the rows here.")
    ap.add_argument("--rounds", type=int, default=3, help="Interleaved throughput rounds (median reported).")
    ap.add_argument("--verify", action="store_true", help="Also run `export verify` (adds minutes; its columns fill in).")
    args = ap.parse_args()

    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medtune.export import export_run
    from medtune.export.verify import llama_threads

    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="medtune-bench-export-"))
    t0 = time.perf_counter()
    summary = export_run(prepare(args, work), work / "export", args.quants, verify=args.verify)
    export_s = time.perf_counter() - t0
    merged = Path(summary["merged"])
    tok = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    rows, letter_ids = encode_items(tok, items(Path(args.data), args.items))
    gold = [g for _, g in rows]
    prompt = rows[0][0][:60]
    hf_pred = hf_letters(model, rows, letter_ids)
    table = [{"model": "HF merged (transformers fp32)", "bytes": sum(p.stat().st_size for p in merged.glob("*.safetensors")),
              "accuracy": round(float(np.mean([p == g for p, g in zip(hf_pred, gold)])), 4), "agree_hf": 1.0}]
    verify = {Path(r["gguf"]).name: r for r in summary["verify"]}
    for q, f in summary["files"].items():
        llm = Llama(f["path"], n_ctx=2048, logits_all=True, verbose=False, n_threads=llama_threads())
        try:
            pred = gguf_letters(llm, rows, letter_ids)
        finally:
            llm.close()
        v = verify.get(Path(f["path"]).name, {})
        table.append({"model": f"GGUF {q} (llama.cpp)", "bytes": f["bytes"], "path": f["path"],
                      "accuracy": round(float(np.mean([p == g for p, g in zip(pred, gold)])), 4),
                      "agree_hf": round(float(np.mean([p == h for p, h in zip(pred, hf_pred)])), 4),
                      "greedy_agreement": v.get("agreement"), "ppl_delta": v.get("ppl_delta")})
    speeds = measure_speeds(model, tok, table, prompt, args.rounds)
    for r, tps in zip(table, speeds):
        r["tokens_per_s"] = round(tps, 1)
        r["speedup"] = round(tps / speeds[0], 2)
    import os

    print(f"items: {len(rows)} (MedQA US 4-option test, first {len(rows)}); export_run: {export_s:.0f} s "
          f"({json.dumps(summary['timings'])}); tokens/s: median of {args.rounds} interleaved rounds; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| model | size (MB) | tokens/s | vs HF fp32 | MedQA acc | letter agreement with HF | verify greedy agreement | Δppl |")
    print("|---|---|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['model']} | {r['bytes'] / 2**20:.0f} | {r['tokens_per_s']} | {r['speedup']}x | {r['accuracy']:.3f} | "
              f"{r['agree_hf']:.3f} | {_cell(r.get('greedy_agreement'))} | {_cell(r.get('ppl_delta'))} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": table, "export": summary}, indent=2, default=str))


if __name__ == "__main__":
    main()
