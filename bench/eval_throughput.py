"""Throughput of `cot` evaluation: batched generation vs the seed guide's one-at-a-time loop, and llama.cpp.

    .venv/bin/python bench/eval_throughput.py --data-root ../shared/data
    # self-consistency: 5 sampled answers per question
    .venv/bin/python bench/eval_throughput.py --data-root ../shared/data --samples 5 --temperature 0.7

Same model (the embedded SmolLM2-135M-Instruct), same benchmark items, same chat prompts
(medtune.data.render), same decoding (greedy, or with ``--temperature T > 0`` sampling at
temperature T and top_p 1 in both transformers engines) and max new tokens, measured side
by side in one process, alternating the engines over ``--rounds`` rounds so load changes
on a shared machine hit every engine alike. Reports questions per minute (the median over
rounds; a question is answered by ``--samples`` completions) and the speed-up ratios and,
for greedy decoding only, how many outputs agree between the batched and the sequential
run (padding must not change the answers; sampled outputs are not comparable).

Engines:
  * sequential -- the seed guide's loop: for each question, for each sample: tokenize the prompt,
                  model.generate, decode (so every sample pays its own prompt prefill).
  * batched    -- medtune.infer.generate_texts via the eval TransformersBackend: continuous batching
                  (a finished row takes the next question at once; shared system-prompt prefix prefilled
                  once; with --samples N each prompt is prefilled once and shared by its N samples).
  * static     -- medtune.infer.static.generate_static: fixed length-sorted, left-padded batches of
                  model.generate (the previous engine; still used for sliding-window models).
  * hf_continuous -- transformers' own continuous batching, model.generate_batch (paged attention),
                  with --hf-continuous only (greedy only).
  * llamacpp   -- the embedded Q4_1 GGUF through llama-cpp-python, one prompt (and sample) at a time
                  (its API is not batched; it samples with top_k 40).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from medtune.eval.backends import LlamaCppBackend, TransformersBackend
from medtune.eval.benchmarks import get_benchmark, load_benchmark_records
from medtune.eval.extract import extract_answer
from medtune.infer.static import generate_static
from medtune.models.embedded import embedded_gguf_path
from medtune.models.load import load_model
from medtune.utils.io import atomic_write_json
from medtune.utils.paths import medtune_home


def sequential_loop(model, tokenizer, prompts: list[str], max_new_tokens: int, samples: int = 1,
                    temperature: float = 0.0, seed: int = 0) -> list[list[str]]:
    """The seed guide's evaluation loop, one example (and one sample) at a time, decoding as in the batched run."""
    import torch

    torch.manual_seed(seed)
    sample = temperature > 0
    out = []
    for prompt in prompts:
        texts = []
        for _ in range(samples):
            inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
            with torch.inference_mode():
                gen = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=sample,
                                     temperature=temperature if sample else None, top_p=1.0 if sample else None,
                                     pad_token_id=tokenizer.pad_token_id)
            texts.append(tokenizer.decode(gen[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip())
        out.append(texts)
    return out


def _grouped(texts: list[str], samples: int) -> list[list[str]]:
    return [texts[i : i + samples] for i in range(0, len(texts), samples)]


def hf_generate_batch(model, tokenizer, prompts: list[str], max_new_tokens: int, rows: int) -> list[list[str]]:
    """transformers' continuous batching (greedy), sized for a CPU: 32-token pages, ``rows`` requests per batch."""
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id)
    cb = ContinuousBatchingConfig(page_size=32, num_blocks=1024, max_batch_tokens=1024, max_requests_per_batch=rows)
    done = model.generate_batch(ids, generation_config=config, continuous_batching_config=cb)
    by_prompt = {tuple(o.prompt_ids): o.generated_tokens for o in done.values()}
    return [[tokenizer.decode(by_prompt[tuple(i)], skip_special_tokens=True).strip()] for i in ids]


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--benchmark", default="mmlu_medical", help="short-prompt items show decoding cost; long ones (medqa) are prefill-bound")
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32, help="rows decoded together (questions x samples)")
    ap.add_argument("--samples", type=int, default=1, help="completions per question (self-consistency)")
    ap.add_argument("--temperature", type=float, default=0.0, help="0 = greedy; > 0 samples at this temperature, top_p 1")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch and llama.cpp threads")
    ap.add_argument("--no-llamacpp", action="store_true")
    ap.add_argument("--no-static", action="store_true", help="skip the fixed-batch model.generate engine")
    ap.add_argument("--hf-continuous", action="store_true", help="also time transformers' generate_batch")
    ap.add_argument("--out", default=str(medtune_home() / "bench" / "eval_throughput.json"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    records = load_benchmark_records(get_benchmark(args.benchmark), args.data_root, limit=args.items)
    loaded = load_model("smollm2-135m", device="cpu")
    fmt = loaded.source.reasoning_format
    backend = TransformersBackend(loaded.model, loaded.tokenizer, fmt, batch_size=args.batch_size)
    prompts = [backend.prompt(r) for r in records]
    greedy = args.temperature <= 0
    decode = {"max_new_tokens": args.max_new_tokens, "num_samples": args.samples, "temperature": args.temperature}
    engines = {
        "sequential": lambda: sequential_loop(loaded.model, loaded.tokenizer, prompts, args.max_new_tokens,
                                              args.samples, args.temperature),
        "batched": lambda: backend.generate(records, **decode),
    }
    if not args.no_static:
        engines["static"] = lambda: _grouped(generate_static(loaded.model, loaded.tokenizer, prompts, seed=0,
                                                             batch_size=args.batch_size, **decode), args.samples)
    if args.hf_continuous and greedy:
        engines["hf_continuous"] = lambda: hf_generate_batch(loaded.model, loaded.tokenizer, prompts,
                                                             args.max_new_tokens, args.batch_size)
    if not args.no_llamacpp:
        llama = LlamaCppBackend(embedded_gguf_path(), fmt, n_threads=args.threads)
        engines["llamacpp"] = lambda: llama.generate(records, **decode)
    seconds: dict[str, list[float]] = {k: [] for k in engines}
    outputs: dict[str, list[list[str]]] = {}
    for rnd in range(args.rounds):
        for name, fn in engines.items():
            outputs[name], s = timed(fn)
            seconds[name].append(s)
            print(f"round {rnd + 1}: {name:10s} {len(records) / s * 60:7.1f} questions/min ({s:.1f} s)", flush=True)
    qpm = {k: round(len(records) / statistics.median(v) * 60, 1) for k, v in seconds.items()}
    tokens = {k: sum(len(loaded.tokenizer(t, add_special_tokens=False)["input_ids"]) for s in v for t in s)
              for k, v in outputs.items()}
    parsed = {k: sum(extract_answer(t, r.options, fmt).parsed for s, r in zip(v, records) for t in s)
              for k, v in outputs.items()}
    result = {
        "items": len(records), "samples": args.samples, "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size, "rounds": args.rounds, "threads": args.threads,
        "decoding": "greedy" if greedy else f"sampling (temperature {args.temperature}, top_p 1)",
        "questions_per_minute": qpm,
        "speedup_batched_vs_sequential": round(qpm["batched"] / qpm["sequential"], 2),
        "generated_tokens_last_round": tokens, "parsed_answers_last_round": parsed, "seconds": seconds,
    }
    for name in [k for k in ("static", "hf_continuous") if k in qpm]:
        result[f"speedup_{name}_vs_sequential"] = round(qpm[name] / qpm["sequential"], 2)
    if greedy:  # sampled outputs differ by chance, so their agreement says nothing about padding
        for name in [k for k in ("batched", "static", "hf_continuous") if k in outputs]:
            same = sum(a == b for a, b in zip(outputs["sequential"], outputs[name]))
            result[f"{name}_equals_sequential_outputs"] = f"{same}/{len(records)}"
    if "llamacpp" in qpm:
        result["speedup_llamacpp_vs_sequential"] = round(qpm["llamacpp"] / qpm["sequential"], 2)
        result["speedup_batched_vs_llamacpp"] = round(qpm["batched"] / qpm["llamacpp"], 2)
    print(json.dumps(result, indent=2))
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
