"""Does the second training stage fix the answer letter? SFT run vs GRPO/DPO/ORPO runs on new synthetic patients.

    nice -n 10 .venv/bin/python bench/rl_stage.py --runs sft=runs/quickstart/train dpo=runs/quickstart-rl/train \\
        --out bench/results/rl_stage

For every run (and the base model with ``base=smollm2-135m``), on the same items and asked the same
way as `medtune eval` asks (the first run's training prompt, greedy, ``--max-new-tokens`` (192), strict extraction):

* **held-out lettered MCQ** -- ``--cases`` new patients (``--seed``, default 1: the quickstart's
  held-out draw), cot protocol: accuracy with its Wilson interval, unparseable answers (a letter
  that contradicts the option text it names is two answers), the share of the most frequently
  *written* letter among the answers (the collapse, coherent or not), McNemar against the first run;
* **open diagnosis** -- the same patients asked "What is the most likely diagnosis?" without
  options: correct when the final answer names the gold condition (its name or a KB alias) and
  no other condition of the item's differential.

Writes ``--out``/<name>/predictions.jsonl (resumable evaluation folders) and summary.json; prints
a markdown table. The wall time of generation is per model, on this machine.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from medtune.data.records import Record
from medtune.data.render import split_reasoning
from medtune.eval.backends import build_backend
from medtune.eval.benchmarks import get_benchmark
from medtune.eval.evaluate import evaluate
from medtune.eval.identity import describe_model
from medtune.eval.metrics import accuracy_summary, mcnemar
from medtune.eval.store import PredictionStore
from medtune.synth.demo import demo_records
from medtune.utils.io import atomic_write_json

WRITTEN = re.compile(r"(?i:answer(?:\s+is)?|option|choice)\W{0,12}\(?([A-E])\b")
PROTOCOL = "cot, greedy, {} new tokens, strict extraction (medtune.eval.extract); the first run's training prompt"


def held_out(cases: int, seed: int, specialties: list[str]) -> tuple[list[Record], list[Record]]:
    """(lettered MCQ, open diagnosis) of the same ``cases`` seed ``seed`` patients, in the quickstart's demo style.

    Not filtered like the pipeline's held-out set (``pipeline.stages.synth``): some are training vignettes with other
    numbers (55 of the first 120 against the quickstart's training set), so its absolute scores run high; the
    stage-against-stage differences it reports compare models on the same items."""
    mcq = list(demo_records(cases, seed=seed, specialties=specialties, tasks=("mcq",), inline_share=0.0))
    dx = list(demo_records(cases, seed=seed, specialties=specialties, tasks=("diagnosis",)))
    return [r for r in mcq if r.options], dx


def names_condition(text: str, gold: str, others: list[str]) -> bool:
    """The final answer names ``gold`` and none of ``others`` (case-insensitive substrings).

    >>> names_condition("The most likely diagnosis is Acute pericarditis.", "Acute pericarditis", ["Aortic dissection"])
    True
    """
    low = text.lower()
    return gold.lower() in low and not any(o.lower() in low for o in others if o.lower() not in gold.lower())


def run_model(name: str, spec: str, mcq: list[Record], dx: list[Record], out: Path, prompt_from: str | None,
              max_new_tokens: int) -> dict[str, Any]:
    model = describe_model(prompt_from or spec)
    backend = build_backend(spec, batch_size=16, reasoning_format=model.reasoning_format)
    t0 = time.perf_counter()
    summary = evaluate(backend, get_benchmark(str(out / "heldout_mcq.jsonl")), mcq, out / name, protocol="cot",
                       max_new_tokens=max_new_tokens, system_prompt=model.system_prompt, write_report=False, log=lambda _: None)
    rows = PredictionStore(out / name / "predictions.jsonl").load()  # the one reader (refuses duplicate ids)
    t_mcq = time.perf_counter() - t0
    cache = out / name / "diagnosis.jsonl"  # the open answers, kept so a rerun only re-reads them
    if cache.is_file() and len(cache.read_text().splitlines()) == len(dx):
        texts = [[json.loads(line)["output"]] for line in cache.read_text().splitlines()]
    else:
        texts = backend.generate(dx, max_new_tokens=max_new_tokens, system_prompt=model.system_prompt)
        cache.write_text("".join(json.dumps({"id": r.id, "output": t[0]}) + "\n" for r, t in zip(dx, texts)))
    differential = sorted({v for r in mcq for v in (r.options or {}).values()})
    dx_ok = [names_condition(split_reasoning(t[0], model.reasoning_format)[1], r.answer.text, differential)
             for r, t in zip(dx, texts)]
    # The letter each answer writes after its cue, whether or not it is coherent with the option text it names: the collapse.
    written = Counter(m.group(1) for r in rows if (m := WRITTEN.search(split_reasoning(r["raw_output"], model.reasoning_format)[1])))
    top = written.most_common(1)[0] if written else (None, 0)
    letters = Counter(r["pred"] for r in rows if r["pred"])
    return {"name": name, "spec": spec, "mcq": accuracy_summary([r["correct"] for r in rows],
                                                                 sum(r["status"] != "ok" for r in rows)),
            "top_letter": top[0], "top_letter_share": round(top[1] / max(sum(written.values()), 1), 3),
            "written_letters": dict(sorted(written.items())), "letters": dict(sorted(letters.items())),
            "diagnosis": accuracy_summary(dx_ok), "seconds_mcq": round(t_mcq, 1),
            "seconds_total": round(time.perf_counter() - t0, 1), "eval_model": summary.get("model"),
            "_correct": {r["id"]: r["correct"] for r in rows}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", nargs="+", required=True, help="NAME=SPEC: a run folder, preset or model folder; first = reference")
    ap.add_argument("--cases", type=int, default=120)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--specialties", nargs="+", default=["cardiology"])
    ap.add_argument("--out", type=Path, default=Path("bench/results/rl_stage"))
    ap.add_argument("--max-new-tokens", type=int, default=192, help="generation budget (the options walk needs ~145 tokens)")
    args = ap.parse_args()
    runs = dict(item.split("=", 1) for item in args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    mcq, dx = held_out(args.cases, args.seed, args.specialties)
    (args.out / "heldout_mcq.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in mcq))
    prompt_from = next((s for s in runs.values() if (Path(s) / "manifest.json").is_file()), None)
    results = [run_model(n, s, mcq, dx, args.out, prompt_from, args.max_new_tokens) for n, s in runs.items()]
    ref = results[0]["_correct"]
    for res in results:
        ids = sorted(ref)
        res["mcnemar_vs_first"] = mcnemar([ref[i] for i in ids], [res["_correct"][i] for i in ids])
    letters = Counter(r.answer.letter for r in mcq)
    protocol = PROTOCOL.format(args.max_new_tokens)
    atomic_write_json(args.out / "summary.json", {"protocol": protocol, "cases": args.cases, "seed": args.seed,
                                                  "gold_letters": dict(sorted(letters.items())),
                                                  "runs": [{k: v for k, v in r.items() if k != "_correct"} for r in results]})
    print(f"{len(mcq)} held-out MCQ (gold letters {dict(sorted(letters.items()))}), {len(dx)} open diagnosis; {protocol}\n")
    print("| run | MCQ accuracy (95% CI) | unparseable | most written letter | McNemar vs first | diagnosis accuracy | seconds |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        m, d, mc = r["mcq"], r["diagnosis"], r["mcnemar_vs_first"]
        print(f"| {r['name']} | {m['accuracy']:.3f} ({m['ci95'][0]:.3f}-{m['ci95'][1]:.3f}) | {m.get('unparseable', 0)} | "
              f"{r['top_letter']} {r['top_letter_share']:.0%} | b={mc['b']} c={mc['c']} p={mc['p_value']:.2g} | "
              f"{d['accuracy']:.3f} | {r['seconds_total']:.0f} |")


if __name__ == "__main__":
    main()
