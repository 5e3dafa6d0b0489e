"""The two protocols, turning records into per-item prediction rows.

* ``loglik`` -- lm-evaluation-harness-compatible: argmax over each choice's summed
  log-probability (``correct``) and its per-character normalised form (``correct_norm``);
  option probabilities are kept for calibration.
* ``cot`` -- the model's chat template and reasoning format; greedy or sampled, n
  samples with majority vote (self-consistency); strict extraction from the final part.

A prediction row is a plain dict (one JSON line in predictions.jsonl):
id, protocol, question, options, gold, pred, correct, status, group (subject/group_id), and per protocol
option_logprobs/option_probs/pred_norm/correct_norm or raw_output/samples/reasoning_chars.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..data.records import Record
from ..data.render import assistant_text, format_assistant, split_reasoning
from .benchmarks import BenchmarkSpec, loglik_request
from .extract import extract_answer
from .metrics import majority_vote


def gold_letter(record: Record) -> str | None:
    """The gold option letter (from the letter, or from the answer text matching an option)."""
    if record.answer.letter:
        return record.answer.letter
    if record.options and record.answer.text:
        for k, v in record.options.items():
            if v.strip().lower() == record.answer.text.strip().lower():
                return k
    return None


def item_group(record: Record, subject_field: str | None = None) -> dict[str, Any]:
    """Grouping keys kept with each prediction: subject/specialty and the counterfactual group id."""
    md = record.metadata or {}
    group = {k: md[k] for k in ("subject", "specialty", "group_id", "variant") if md.get(k) is not None}
    if subject_field and md.get(subject_field) is not None:
        group["subject"] = md[subject_field]
    return group


def item_text(record: Record) -> dict[str, Any]:
    """The question and options as asked, kept in each row so a report can show the item without its source file."""
    return {"question": record.question, "options": dict(record.options or {})}


CHAT_ANSWER_CUE = "The answer is ("  # how medtune's training targets state the answer (render.final_answer_text)


def chat_loglik_request(backend: Any, record: Record, system_prompt: str | None = None) -> tuple[str, list[str]]:
    """The trained format: chat prompt, empty reasoning, then "The answer is (" + each option letter.

    Scores what a tuned model was taught to say, without paying for generated reasoning.
    """
    if not record.options:
        raise ValueError(f"item {record.id} has no options; the loglik protocol needs multiple choice")
    context = backend.prompt(record, system_prompt) + format_assistant(None, CHAT_ANSWER_CUE, backend.reasoning_format)
    return context, list(record.options)


def run_loglik(backend: Any, spec: BenchmarkSpec, records: Sequence[Record],
               system_prompt: str | None = None) -> list[dict[str, Any]]:
    """Score every record's choices with the backend; one prediction row per record.

    ``system_prompt`` applies to the chat style (the harness style has no chat turns).
    """
    if spec.loglik.style == "chat":
        requests = [chat_loglik_request(backend, r, system_prompt) for r in records]
    else:
        requests = [loglik_request(spec, r) for r in records]
    scores = backend.score_choices(requests)
    rows = []
    for record, (context, _), s in zip(records, requests, scores):
        letters = list(record.options or {})
        gold = gold_letter(record)
        best = max(range(len(letters)), key=lambda i: s.logprobs[i])
        best_norm = max(range(len(letters)), key=lambda i: s.norm_logprobs[i])
        rows.append({
            "id": record.id, "protocol": "loglik", "prompt": context, "gold": gold,
            "pred": letters[best], "correct": letters[best] == gold, "status": "ok",
            "pred_norm": letters[best_norm], "correct_norm": letters[best_norm] == gold,
            "option_logprobs": dict(zip(letters, [round(x, 4) for x in s.logprobs])),
            "option_probs": dict(zip(letters, [round(p, 5) for p in s.probs])),
            "confidence": round(max(s.probs), 5),
            "group": item_group(record, spec.subject_field), **item_text(record),
        })
    return rows


def score_output(record: Record, samples: Sequence[str], fmt: str | None = None) -> dict[str, Any]:
    """Extraction + correctness for one item's generated sample(s); also used by `medtune eval score`."""
    gold = gold_letter(record)
    extractions = [extract_answer(t, record.options or {}, fmt) for t in samples]
    letters = [e.letter for e in extractions]
    pred = majority_vote(letters) if len(samples) > 1 else letters[0]
    first = extractions[0]
    status = "ok" if pred is not None else ("conflicting" if any(e.status == "conflicting" for e in extractions) else "unparseable")
    reasoning, _ = split_reasoning(samples[0], fmt)
    row: dict[str, Any] = {
        "id": record.id, "gold": gold, "pred": pred, "correct": pred is not None and pred == gold, "status": status,
        "method": first.method if len(samples) == 1 else "majority_vote", "raw_output": samples[0],
        "reasoning_chars": len(reasoning or samples[0]),
    }
    if len(samples) > 1:
        row["samples"] = [{"output": t, "pred": e.letter, "status": e.status} for t, e in zip(samples, extractions)]
        row["votes"] = {x: letters.count(x) for x in dict.fromkeys(letters) if x}
    return row


def run_cot(backend: Any, records: Sequence[Record], *, max_new_tokens: int = 256, temperature: float = 0.0,
            num_samples: int = 1, seed: int | None = 0, system_prompt: str | None = None,
            subject_field: str | None = None) -> list[dict[str, Any]]:
    """Generate (num_samples per item) and extract strictly; unparseable answers count as wrong.

    Open-ended items (no options) are scored by ROUGE-L F1 of the final-answer part against
    the reference (``response`` or ``answer.text``); their rows carry ``rougeL`` instead of ``correct``.
    """
    outputs = backend.generate(records, max_new_tokens=max_new_tokens, temperature=temperature,
                               num_samples=num_samples, seed=seed, system_prompt=system_prompt)
    rows = []
    for record, samples in zip(records, outputs):
        prompt = backend.prompt(record, system_prompt)
        samples = [assistant_text(prompt, t) for t in samples]  # a reasoning opener the template put in the prompt
        if record.options:
            row = score_output(record, samples, backend.reasoning_format)
        else:
            row = _score_open(record, samples[0], backend.reasoning_format)
        row.update(protocol="cot", prompt=prompt, group=item_group(record, subject_field),
                   **item_text(record))
        rows.append(row)
    return rows


def _score_open(record: Record, output: str, fmt: str | None) -> dict[str, Any]:
    from .metrics import rouge_l

    reference = (record.response or record.answer.text or "").strip()
    reasoning, final = split_reasoning(output, fmt)
    score = rouge_l([final], [reference])["per_item"][0] if reference else None
    return {"id": record.id, "gold": reference, "pred": None, "status": "open", "raw_output": output,
            "rougeL": score, "reasoning_chars": len(reasoning or output)}
