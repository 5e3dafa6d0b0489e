"""The evaluation stage: run a protocol over records into a resumable folder, then summarise.

Output folder (one benchmark x protocol x model):
  fingerprint.json   what the rows are a function of (model files, prompt, protocol, decoding, benchmark; eval/identity.py)
  predictions.jsonl  append-only per-item rows (prompt, raw output, extracted answer, correct, option log-probs)
  summary.json       accuracy + Wilson 95% CI, per subject, calibration, length analysis, consistency
  report.md / report.html   human-readable; the HTML embeds its plots as base64 PNG (one self-contained file)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..data.records import Answer, Record
from ..utils.io import atomic_write_json
from .benchmarks import BenchmarkSpec, LoglikSpec
from .identity import (
    Decoding,
    EvalModel,
    build_fingerprint,
    describe_backend,
    describe_model,
    records_sha,
)
from .metrics import (
    accuracy_by_group,
    accuracy_summary,
    chance_level,
    counterfactual_consistency,
    expected_calibration_error,
    length_vs_correctness,
    permutation_consistency,
)
from .runners import run_cot, run_loglik
from .store import PredictionStore

PROTOCOLS = {
    "loglik": "zero-shot log-likelihood: argmax of summed choice log-prob; acc_norm divides by choice length in characters "
              "(style harness = lm-evaluation-harness prompt; style chat = chat template, empty reasoning, 'The answer is (' + letter)",
    "cot": "chat template + reasoning format, then strict extraction from the final-answer part; unparseable = wrong",
}


def permuted_records(records: Sequence[Record], k: int) -> list[Record]:
    """k cyclic shifts of each MCQ's option texts (answer letter follows its text), for permutation consistency."""
    out = []
    for r in records:
        if not r.options or not r.answer.letter:
            continue
        letters, texts = list(r.options), list(r.options.values())
        for shift in range(1, min(k, len(letters) - 1) + 1):
            moved = dict(zip(letters, texts[shift:] + texts[:shift]))
            gold_text = r.options[r.answer.letter]
            new_letter = next(x for x, t in moved.items() if t == gold_text)
            out.append(r.model_copy(update={
                "id": f"{r.id}#perm{shift}", "options": moved, "answer": Answer(letter=new_letter, text=gold_text),
                "metadata": {**r.metadata, "perm_of": r.id},
            }))
    return out


def evaluate(
    backend: Any,
    spec: BenchmarkSpec,
    records: Sequence[Record],
    out_dir: str | Path,
    *,
    protocol: str = "loglik",
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    num_samples: int = 1,
    seed: int | None = 0,
    permutations: int = 0,
    chunk_size: int = 32,
    write_report: bool = True,
    log: Callable[[str], None] = print,
    system_prompt: str | None = None,
    model: EvalModel | None = None,
    benchmark_sha256: str | None = None,
    overwrite: bool = False,
    limit: int | None = None,
) -> dict[str, Any]:
    """Evaluate ``records`` with ``backend``; completed items of the same evaluation in ``out_dir`` are skipped (resume).

    ``model`` describes the backend's model (``identity.describe_model``: file hashes, prompt
    settings); without it the backend's weights are hashed and ``system_prompt`` is used.
    ``benchmark_sha256`` is the hash of the benchmark's source (default: of ``records``). A folder
    holding another evaluation's rows is refused (EvalIdentityError naming what differs) unless
    ``overwrite``, which discards them and starts over. ``limit`` (--limit: ``records`` are the benchmark's
    first items) is recorded in the summary's settings, beside the benchmark's declared size.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: use loglik or cot")
    out_dir = Path(out_dir)
    model = model or describe_backend(backend, system_prompt)
    if getattr(backend, "dtype", None):  # what the loaded weights compute in, whatever was predicted
        model = replace(model, dtype=backend.dtype)
    decoding = Decoding(max_new_tokens=max_new_tokens, temperature=temperature, num_samples=num_samples, seed=seed)
    fingerprint = build_fingerprint(model, protocol=protocol, spec=spec, decoding=decoding,
                                    benchmark_sha256=benchmark_sha256 or records_sha(list(records)))
    store = PredictionStore(out_dir / "predictions.jsonl")
    resumed = store.claim(fingerprint, overwrite=overwrite)
    items = list(records) + permuted_records(records, permutations)
    require_unique_ids(items)
    done = {r["id"] for r in store.load()}
    todo = [r for r in items if r.id not in done]
    if resumed:
        others = len(done - {r.id for r in items})
        log(f"resuming the same evaluation ({store.fingerprint_path.name} matches): {len(items) - len(todo)} of the "
            f"{len(items)} items already in {store.path}, {len(todo)} to go"
            + (f" ({others} rows of other items stay there, outside this summary)" if others else ""))
    t0 = time.perf_counter()
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start : start + chunk_size]
        if protocol == "loglik":
            rows = run_loglik(backend, spec, chunk, system_prompt=model.system_prompt)
        else:
            rows = run_cot(backend, chunk, max_new_tokens=max_new_tokens, temperature=temperature, num_samples=num_samples,
                           seed=seed, system_prompt=model.system_prompt, subject_field=spec.subject_field)
        for row, record in zip(rows, chunk):
            row["pred_text"] = (record.options or {}).get(row["pred"]) if row.get("pred") else None
            if record.metadata.get("perm_of"):
                row["group"]["perm_of"] = record.metadata["perm_of"]
        store.append(rows)
        log(f"{spec.name}: {min(start + chunk_size, len(todo))}/{len(todo)} items")
    seconds = time.perf_counter() - t0
    summary = summarize(rows_of(store.load(), items), spec, protocol, model=getattr(backend, "label", "model"))
    summary["settings"] = {"max_new_tokens": max_new_tokens, "temperature": temperature, "num_samples": num_samples,
                           "seed": seed, "permutations": permutations, "backend": getattr(backend, "name", "?"),
                           "dtype": getattr(backend, "dtype", None), "limit": limit}
    summary["benchmark_items"] = spec.expected_items
    summary["prompt"] = {"system_prompt": model.system_prompt, "reasoning_format": model.reasoning_format,
                         "from": model.prompt_source}
    summary["model_identity"] = model.identity
    summary["seconds_this_session"] = round(seconds, 1)
    atomic_write_json(out_dir / "summary.json", summary)
    if write_report:
        from .report import write_report as _write

        _write(out_dir)
    return summary


def require_unique_ids(items: Sequence[Record]) -> None:
    """Refuse two items with one id: rows are resumed and summarised by id, so one of them would silently go missing."""
    seen: set[str] = set()
    for r in items:
        if r.id in seen:
            raise ValueError(f"item id {r.id!r} occurs twice among the records to evaluate; every item needs its own id")
        seen.add(r.id)


def rows_of(rows: Sequence[dict[str, Any]], items: Sequence[Record]) -> list[dict[str, Any]]:
    """The stored row of each of ``items`` that has one, in the items' order.

    ``rows`` come from ``PredictionStore``, which refuses two rows of one id. A folder may also
    hold rows of other items of the same evaluation (an earlier call with a larger --limit, say):
    they stay there for a later resume, but a summary covers only the items its call asked for.
    """
    by_id = {str(row["id"]): row for row in rows}
    return [by_id[r.id] for r in items if r.id in by_id]


def summarize(rows: list[dict[str, Any]], spec: BenchmarkSpec, protocol: str, model: str = "model") -> dict[str, Any]:
    """Summary of prediction rows; permuted copies feed only the permutation-consistency figure."""
    main = [r for r in rows if not (r.get("group") or {}).get("perm_of") and r.get("status") != "open"]
    open_rows = [r for r in rows if r.get("status") == "open" and r.get("rougeL") is not None]
    correct = [bool(r["correct"]) for r in main]
    unparseable = sum(1 for r in main if r.get("status") != "ok")
    out: dict[str, Any] = {
        "benchmark": spec.name, "model": model, "protocol": protocol, "protocol_description": PROTOCOLS[protocol],
        "harness_task": spec.loglik.harness_task if protocol == "loglik" and spec.loglik.style == "harness" else None,
        "loglik_style": spec.loglik.style if protocol == "loglik" else None,
        "chance": chance_level([len(r.get("options") or r.get("option_probs") or {}) for r in main], spec.chance),
        "accuracy": accuracy_summary(correct, unparseable),
        "by_subject": accuracy_by_group(main, "subject"),
        # the items this summary covers: a folder may hold rows of others (an earlier, larger --limit), and
        # everything shown beside these numbers (the report's tables and item browser) reads only these
        "item_ids": [r["id"] for r in rows if not (r.get("group") or {}).get("perm_of")],
    }
    if protocol == "loglik" and main:
        out["accuracy_norm"] = accuracy_summary([bool(r["correct_norm"]) for r in main])
        out["calibration"] = expected_calibration_error([r["confidence"] for r in main], correct)
    if protocol == "cot" and main:
        out["unparseable_by_status"] = {s: sum(1 for r in main if r.get("status") == s) for s in ("unparseable", "conflicting")}
        out["length_vs_correctness"] = length_vs_correctness([r["reasoning_chars"] for r in main], correct)
    perms: dict[str, list] = {r["id"]: [r.get("pred_text")] for r in main}
    for r in rows:
        base = (r.get("group") or {}).get("perm_of")
        if base in perms:
            perms[base].append(r.get("pred_text"))
    perms = {k: v for k, v in perms.items() if len(v) > 1}
    if perms:
        out["permutation_consistency"] = permutation_consistency(perms)
    if open_rows:
        out["open_ended"] = {"n": len(open_rows), "rougeL_f1": round(sum(r["rougeL"] for r in open_rows) / len(open_rows), 4)}
    cf = counterfactual_consistency(main)
    if cf["groups"]:
        out["counterfactual_consistency"] = cf
    return out


def compare_models(
    base_spec: str,
    tuned_run_dir: str | Path,
    records: Sequence[Record],
    out_dir: str | Path,
    *,
    protocol: str = "loglik",
    spec: BenchmarkSpec | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    device: str = "auto",
    dtype: str = "auto",
    log: Callable[[str], None] = print,
    reasoning_format: str | None = None,
    system_prompt: str | None = None,
    overwrite: bool = False,
    limit: int | None = None,
) -> dict[str, Any]:
    """Base versus tuned on the same records: both summaries, the gain with its interval, McNemar.

    ``tuned_run_dir`` is a training run (RUN/adapter + RUN/manifest.json). Both models are asked
    the same way: with the run's training reasoning format and system prompt (its manifest)
    unless ``reasoning_format`` / ``system_prompt`` override them. Writes out_dir/base,
    out_dir/tuned (resumable evaluation folders) and out_dir/compare.{json,md,html}.
    Both folders are checked before any model loads: rows of another evaluation are refused
    (EvalIdentityError), or discarded with ``overwrite=True`` (what a pipeline re-run wants).
    ``limit`` (the records are the benchmark's first ``limit`` items) is recorded in both summaries; ``dtype``
    (config ``model.dtype``) is the dtype both load in.
    """
    from .backends import build_backend
    from .report import compare_runs

    spec = spec or BenchmarkSpec(name="heldout", files="-", description="held-out records", loglik=LoglikSpec(style="chat"))
    out_dir = Path(out_dir)
    tuned = describe_model(str(tuned_run_dir), reasoning_format=reasoning_format, system_prompt=system_prompt,
                           device=device, dtype=dtype)
    base = replace(describe_model(base_spec, reasoning_format=tuned.reasoning_format, system_prompt=tuned.system_prompt or "",
                                  device=device, dtype=dtype),
                   prompt_source=f"the tuned run's ({tuned.prompt_source})")
    models, source_sha = {"base": base, "tuned": tuned}, records_sha(list(records))
    if not overwrite:
        for label, model in models.items():
            PredictionStore(out_dir / label / "predictions.jsonl").check(build_fingerprint(
                model, protocol=protocol, spec=spec, benchmark_sha256=source_sha, decoding=Decoding(max_new_tokens=max_new_tokens)))
    summaries = {}
    for label, model in models.items():
        backend = build_backend(model.spec, batch_size=batch_size, device=device, reasoning_format=model.reasoning_format,
                                dtype=dtype)
        summaries[label] = evaluate(backend, spec, records, out_dir / label, protocol=protocol, max_new_tokens=max_new_tokens,
                                    log=log, model=model, benchmark_sha256=source_sha, overwrite=overwrite, limit=limit)
        del backend
    result = compare_runs(out_dir / "base", out_dir / "tuned", out_dir, ids=[r.id for r in records])
    result.update(base=summaries["base"]["accuracy"], tuned=summaries["tuned"]["accuracy"], protocol=protocol,
                  prompt=summaries["tuned"]["prompt"])
    atomic_write_json(out_dir / "compare.json", result)
    return result
