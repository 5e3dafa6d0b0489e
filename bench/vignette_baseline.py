"""Does the synthetic data carry the signal? TF-IDF + logistic regression on engine cases, scored on
the hand-written dev vignettes the way a model is scored.

    nice -n 10 .venv/bin/python bench/vignette_baseline.py                  # 4,000 cases, seed 0
    nice -n 10 .venv/bin/python bench/vignette_baseline.py --cases 10000 --seeds 0 1 2
    nice -n 10 .venv/bin/python bench/vignette_baseline.py --compact          # the CPU recipe's short cases
    nice -n 10 .venv/bin/python bench/vignette_baseline.py --records RUN/synth/records.jsonl   # a recipe's own data

The classifier learns condition names from the vignettes of ``--cases`` engine cases (all KB
conditions), or with ``--records`` from the question stems of a synth records file (what a
recipe's model trained on, labelled by each record's ``metadata.condition_id``). On each dev item
it scores every option by the probability of the knowledge-base condition the option names (its name or an alias; an option naming no KB condition scores 0) and
picks the highest, ties to the first option: one letter per item, so accuracy, its Wilson
interval and the per-specialty table are computed exactly as for `medtune eval` (eval/metrics.py),
and the per-item rows can be paired with a model's (`medtune eval compare`, McNemar).

Writes ``--out``/predictions.jsonl and summary.json (an evaluation folder) and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from medtune.data.importers.base import DataError
from medtune.data.io import read_records
from medtune.data.records import Record, normalize_text
from medtune.eval.benchmarks import get_benchmark, load_benchmark_records
from medtune.eval.metrics import accuracy_by_group, accuracy_summary
from medtune.synth import generate_cases
from medtune.synth.kb import KnowledgeBase, load_kb
from medtune.utils.io import atomic_write_json, atomic_write_jsonl
from medtune.utils.paths import medtune_home

PROTOCOL = "tfidf-logreg: P(KB condition named by the option | vignette), argmax over options"


def stem(record: Record) -> str:
    """The case without its closing question line (lettered options live apart, in record.options)."""
    return record.question.rsplit("\n\n", 1)[0] if record.options else record.question


def records_training_set(path: Path) -> tuple[list[str], list[str]]:
    """Question stems and condition ids of a synth records file (records without a condition id are skipped)."""
    try:
        pairs = [(stem(r), r.metadata["condition_id"]) for r in read_records(path) if (r.metadata or {}).get("condition_id")]
    except DataError as e:  # names the file, line and field
        raise SystemExit(str(e)) from None
    if not pairs:
        raise SystemExit(f"{path}: no record carries metadata.condition_id (is it a medtune synth records file?)")
    return [t for t, _ in pairs], [c for _, c in pairs]


def train_classifier(n_cases: int, seed: int, c: float = 10.0, compact: bool = False, records: Path | None = None):
    """TF-IDF (words and word pairs) + multinomial logistic regression over condition ids."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if records is not None:
        texts, labels = records_training_set(records)
    else:
        cases = list(generate_cases(n_cases, seed, compact=compact))
        texts, labels = [c_["vignette"] for c_ in cases], [c_["condition_id"] for c_ in cases]
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
                          LogisticRegression(C=c, max_iter=2000))
    model.fit(texts, labels)
    return model


def option_classes(kb: KnowledgeBase) -> dict[str, str]:
    """Normalized condition name or alias -> condition id."""
    out: dict[str, str] = {}
    for cid, cond in kb.conditions.items():
        for name in (cond.name, *cond.aliases):
            out.setdefault(normalize_text(name), cid)
    return out


def score_items(model, records: list[Record], names: dict[str, str], subject_field: str | None) -> list[dict[str, Any]]:
    """One prediction row per item, in the shape `medtune eval` writes (id, pred, gold, correct, group)."""
    stems = [stem(r) for r in records]
    probs = model.predict_proba(stems)
    index = {cid: i for i, cid in enumerate(model.classes_)}
    rows = []
    for record, p in zip(records, probs):
        scores = {k: (p[index[names[normalize_text(v)]]] if normalize_text(v) in names else 0.0)
                  for k, v in (record.options or {}).items()}
        pred = max(scores, key=lambda k: scores[k])  # dicts keep option order: ties go to the first
        rows.append({"id": record.id, "protocol": "tfidf", "status": "ok", "pred": pred, "pred_text": record.options[pred],
                     "gold": record.answer.letter, "correct": pred == record.answer.letter,
                     "kb_options": sum(1 for v in record.options.values() if normalize_text(v) in names),
                     "confidence": round(float(scores[pred]), 4),
                     "group": {"subject": record.metadata.get(subject_field)} if subject_field else {}})
    return rows


def summarize_rows(rows: list[dict[str, Any]], benchmark: str, n_cases: int, seed: int, compact: bool = False,
                   records: Path | None = None) -> dict[str, Any]:
    correct = [r["correct"] for r in rows]
    letters = Counter(r["pred"] for r in rows)
    kb_only_chance = sum(1 / max(1, r["kb_options"]) for r in rows) / len(rows)
    form = "compact " if compact else ""
    trained_on = f"records {records}" if records is not None else f"{n_cases} {form}engine cases, seed {seed}"
    return {"benchmark": benchmark, "model": f"tfidf-logreg ({trained_on})", "protocol": "tfidf",
            "protocol_description": PROTOCOL, "accuracy": accuracy_summary(correct),
            "by_subject": accuracy_by_group(rows, "subject"),
            "predicted_letters": dict(sorted(letters.items())),
            "largest_letter_share": round(max(letters.values()) / len(rows), 3),
            "kb_only_guess_chance": round(kb_only_chance, 3)}


def run(n_cases: int, seed: int, benchmark: str, out: Path, compact: bool = False,
        train_records: Path | None = None) -> dict[str, Any]:
    spec = get_benchmark(benchmark)
    records = load_benchmark_records(spec)
    t0 = time.perf_counter()
    model = train_classifier(n_cases, seed, compact=compact, records=train_records)
    rows = score_items(model, records, option_classes(load_kb()), spec.subject_field)
    summary = summarize_rows(rows, spec.name, n_cases, seed, compact, train_records)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_jsonl(out / "predictions.jsonl", rows)
    atomic_write_json(out / "summary.json", summary)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=4000, help="engine cases to train on (all KB conditions)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per engine seed")
    ap.add_argument("--benchmark", default="dev_vignettes", help="declared benchmark or record file to score")
    ap.add_argument("--compact", action="store_true", help="train on the compact case write-ups (synth compact=True)")
    ap.add_argument("--records", type=Path, default=None,
                    help="train on this synth records file's question stems instead of fresh engine cases (one run, "
                    "written under --out/records)")
    ap.add_argument("--out", default=str(medtune_home() / "bench" / "vignette_baseline"),
                    help="one evaluation folder per seed is written under it (seed<N>/)")
    args = ap.parse_args()
    if args.records and (args.compact or args.seeds != [0] or args.cases != 4000):
        ap.error("--records trains on that file alone: --cases, --seeds and --compact do not apply")
    runs = [(None, "records")] if args.records else [(seed, f"seed{seed}") for seed in args.seeds]
    for seed, folder in runs:
        s = run(args.cases, seed or 0, args.benchmark, Path(args.out) / folder, compact=args.compact,
                train_records=args.records)
        acc = s["accuracy"]
        print(json.dumps({"trained_on": s["model"], "accuracy": acc["accuracy"], "ci95": acc["ci95"], "n": acc["n"],
                          "largest_letter_share": s["largest_letter_share"], "kb_only_guess_chance": s["kb_only_guess_chance"],
                          "seconds": s["seconds"]}))
        for subject, a in s["by_subject"].items():
            print(f"  {subject:22s} {a['correct']:>2}/{a['n']:<2} {a['accuracy']:.2f} {a['ci95']}")


if __name__ == "__main__":
    main()
