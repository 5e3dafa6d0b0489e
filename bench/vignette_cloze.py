"""Does the model know the diagnosis without writing its reasoning? Score each option's text in the
slot where a demo-trained model names its diagnosis, and compare with the letter loglik.

    .venv/bin/python bench/vignette_cloze.py smollm2-135m --out runs/cloze/base
    .venv/bin/python bench/vignette_cloze.py RUN/train --out runs/cloze/tuned
    medtune eval compare runs/cloze/base runs/cloze/tuned          # paired, McNemar

For each dev vignette the context is the chat prompt, then the assistant turn opened in the
model's reasoning format with the demo answers' conclusion line ("## Thinking", then
"Conclusion: these findings point to"), and the continuations are the option texts (" <text>.").
The option with the highest summed log-probability is the prediction (``--norm``: per character,
lm-evaluation-harness's acc_norm); one letter per item, so accuracy, its Wilson interval and the
per-specialty table are computed as for `medtune eval` (eval/metrics.py), and the rows pair with
any evaluation folder of the same benchmark.

This is a diagnostic, not one of `medtune eval`'s protocols: the slot is medtune's own demo
training format, so it measures what a demo-trained model learned to say there, and a model
trained on other data has no reason to put its diagnosis after those words. The base model is
scored in the same slot for the paired comparison. Writes ``--out``/predictions.jsonl and
summary.json and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from medtune.data.records import Record
from medtune.data.render import format_assistant
from medtune.eval.backends import BackendError, build_backend
from medtune.eval.benchmarks import BenchmarkError, get_benchmark, load_benchmark_records
from medtune.eval.metrics import accuracy_by_group, accuracy_summary
from medtune.eval.runners import gold_letter
from medtune.models.source import ModelLoadError
from medtune.synth.demo import CONCLUSION_CUE
from medtune.utils.io import atomic_write_json, atomic_write_jsonl

PROTOCOL = f"cloze: option text after '{CONCLUSION_CUE}' in the reasoning slot, argmax of summed log-prob"
_CUT = "\x00"


def cloze_request(backend: Any, record: Record) -> tuple[str, list[str]]:
    """Chat prompt + the reasoning format's opening + the conclusion cue; one continuation per option text."""
    opened = format_assistant(f"{CONCLUSION_CUE} {_CUT}", "", backend.reasoning_format).split(_CUT)[0]
    return backend.prompt(record) + opened, [f"{text}." for text in (record.options or {}).values()]


def score_items(backend: Any, records: list[Record], norm: bool, subject_field: str | None) -> list[dict[str, Any]]:
    """One prediction row per item, in the shape `medtune eval` writes (id, pred, gold, correct, group)."""
    scores = backend.score_choices([cloze_request(backend, r) for r in records])
    rows = []
    for record, s in zip(records, scores):
        letters = list(record.options or {})
        values = s.norm_logprobs if norm else s.logprobs
        pred = letters[max(range(len(letters)), key=lambda i: values[i])]  # ties go to the first option
        gold = gold_letter(record)
        rows.append({"id": record.id, "protocol": "cloze", "status": "ok", "pred": pred, "pred_text": record.options[pred],
                     "gold": gold, "correct": pred == gold,
                     "option_logprobs": dict(zip(letters, [round(x, 4) for x in s.logprobs])),
                     "group": {"subject": record.metadata.get(subject_field)} if subject_field else {}})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="preset, HF folder or training run folder (RUN/train)")
    ap.add_argument("--benchmark", default="dev_vignettes", help="declared multiple-choice benchmark to score")
    ap.add_argument("--norm", action="store_true", help="per-character normalised log-prob (acc_norm) instead of the sum")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", type=Path, required=True, help="evaluation folder to write (predictions.jsonl, summary.json)")
    args = ap.parse_args()
    try:
        spec = get_benchmark(args.benchmark)
        records = load_benchmark_records(spec)
        open_ended = [r.id for r in records if not r.options]
        if open_ended:
            ap.error(f"{args.benchmark}: {len(open_ended)} items have no options (first: {open_ended[0]}); "
                     "the cloze scores multiple-choice items only")
        t0 = time.perf_counter()
        backend = build_backend(args.model, batch_size=args.batch_size)
    except (BenchmarkError, BackendError, ModelLoadError) as e:
        ap.error(str(e))
    rows = score_items(backend, records, args.norm, spec.subject_field)
    letters = Counter(r["pred"] for r in rows)
    summary = {"benchmark": spec.name, "model": args.model, "protocol": "cloze", "protocol_description": PROTOCOL,
               "reasoning_format": backend.reasoning_format, "normalised": args.norm,
               "accuracy": accuracy_summary([r["correct"] for r in rows]), "by_subject": accuracy_by_group(rows, "subject"),
               "predicted_letters": dict(sorted(letters.items())),
               "largest_letter_share": round(max(letters.values()) / len(rows), 3),
               "seconds": round(time.perf_counter() - t0, 1)}
    atomic_write_jsonl(args.out / "predictions.jsonl", rows)
    atomic_write_json(args.out / "summary.json", summary)
    acc = summary["accuracy"]
    print(json.dumps({"model": args.model, "accuracy": acc["accuracy"], "ci95": acc["ci95"], "n": acc["n"],
                      "predicted_letters": summary["predicted_letters"], "seconds": summary["seconds"]}))
    for subject, a in summary["by_subject"].items():
        print(f"  {subject:22s} {a['correct']:>2}/{a['n']:<2} {a['accuracy']:.2f} {a['ci95']}")


if __name__ == "__main__":
    main()
