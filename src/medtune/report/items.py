"""The item browser's data: every evaluated item with its question, options, gold, output and outcome.

The browser (static/items.js) renders from one JSON object embedded in the page. Question
and options are stored once per distinct item and referenced by index, so base and tuned
evaluations of the same 4,000 items do not carry the question twice.

The extracted answer is highlighted with the evaluation's own extractor: the final-answer
part of the output (``answer_parts``, what the extractor reads) is cut into sentences,
and the first sentence from which ``extract_answer`` alone recovers the stored prediction
is marked. When no single sentence does (a bare "C" needs the whole final part), the whole
final part is marked. The highlight is a pointer for the reader; the score is the stored one.

>>> out = "## Thinking\\nChest pain.\\n## Final Response\\nI think so. The answer is (B) MI."
>>> final, span = answer_highlight(out, {"A": "PE", "B": "MI"}, "B")
>>> out[final:], out[span[0]:span[1]]
('I think so. The answer is (B) MI.', 'The answer is (B) MI.')
"""

from __future__ import annotations

import re
from typing import Any

from ..eval.extract import answer_parts, extract_answer
from ..eval.metrics import paired_flips
from .collect import Comparison, Evaluation

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")


def answer_highlight(output: str, options: dict[str, str] | None, pred: str | None,
                     fmt: str | None = None) -> tuple[int, list[int] | None]:
    """(offset where the final-answer part starts, [start, end] of the extracted answer or None).

    Plain output is read as the extractor reads it (``answer_parts``: paragraphs from the last), and the
    paragraph holding the answer is the final part shown.
    """
    parts = [p.strip() for p in answer_parts(output or "", fmt) if p.strip()]
    if not parts:
        return len(output or ""), None
    if not (pred and options):
        return output.rfind(parts[0]), None
    for part in parts:
        found = _highlight_in(output, part, options, pred)
        if found is not None:
            return found
    start = output.rfind(parts[0])
    return start, [start, start + len(parts[0])]


def _highlight_in(output: str, final: str, options: dict[str, str], pred: str) -> tuple[int, list[int]] | None:
    """The first sentence of ``final`` (a part of ``output``) from which the extractor alone recovers ``pred``."""
    start = output.rfind(final)
    pos = 0
    pieces = [(m.start(), m.end()) for m in _SENTENCE_BREAK.finditer(final)] + [(len(final), len(final))]
    for cut, resume in pieces:
        piece = final[pos:cut]
        if piece.strip() and extract_answer(piece, options).letter == pred:
            lead = len(piece) - len(piece.lstrip())
            return start, [start + pos + lead, start + pos + len(piece.rstrip())]
        pos = resume
    return None


def outcome(row: dict[str, Any]) -> str:
    """correct | incorrect | unparseable (no answer or two answers) | open (open-ended, ROUGE-scored)."""
    status = row.get("status")
    if status == "open":
        return "open"
    if status not in (None, "ok"):
        return "unparseable"
    return "correct" if row.get("correct") else "incorrect"


def flips(a: Evaluation, b: Evaluation) -> dict[str, list[str]]:
    """Item ids whose correctness differs: ``gained`` (A wrong, B right) and ``lost`` (A right, B wrong)."""
    return paired_flips({str(r["id"]): bool(r.get("correct")) for r in a.rows},
                        {str(r["id"]): bool(r.get("correct")) for r in b.rows})


def _question(row: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """Question and options as evaluated; rows written before they were stored fall back to the prompt."""
    if row.get("question"):
        return str(row["question"]), dict(row.get("options") or {})
    return str(row.get("prompt") or "(question not stored in predictions.jsonl)"), dict(row.get("options") or {})


def _browser_row(row: dict[str, Any], eval_index: int, question_index: int, options: dict[str, str],
                 fmt: str | None) -> dict[str, Any]:
    group = row.get("group") or {}
    item: dict[str, Any] = {"e": eval_index, "id": str(row["id"]), "q": question_index, "g": row.get("gold"),
                            "p": row.get("pred"), "o": outcome(row), "m": row.get("method"),
                            "subj": group.get("subject") or group.get("specialty")}
    if row.get("raw_output") is not None:
        item["out"] = row["raw_output"]
        # with several samples the output shown is the first one: highlight what it said, not the vote
        shown_pred = row["samples"][0].get("pred") if row.get("samples") else row.get("pred")
        item["fin"], item["hl"] = answer_highlight(row["raw_output"], options, shown_pred, fmt)
    if row.get("option_probs"):
        item["pr"] = row["option_probs"]
    if row.get("votes"):
        item["votes"] = row["votes"]
    if row.get("rougeL") is not None:
        item["rouge"] = round(float(row["rougeL"]), 4)
    return item


def browser_data(evaluations: list[Evaluation], comparisons: list[Comparison],
                 reasoning_formats: dict[str, str | None] | None = None) -> dict[str, Any]:
    """The JSON object the item browser renders: evaluations, distinct questions, item rows with flips."""
    questions: list[dict[str, Any]] = []
    seen: dict[tuple[str, tuple], int] = {}
    rows: list[dict[str, Any]] = []
    where: dict[tuple[int, str], int] = {}
    evals = []
    for e_index, ev in enumerate(evaluations):
        evals.append({"label": ev.label, "benchmark": ev.summary["benchmark"], "protocol": ev.summary["protocol"],
                      "model": ev.summary.get("model", "")})
        fmt = (reasoning_formats or {}).get(ev.key)
        for row in ev.rows:
            text, options = _question(row)
            key = (text, tuple(options.items()))
            if key not in seen:
                seen[key] = len(questions)
                questions.append({"text": text, "options": options})
            where[(e_index, str(row["id"]))] = len(rows)
            rows.append(_browser_row(row, e_index, seen[key], options, fmt))
    index = {ev.key: i for i, ev in enumerate(evaluations)}
    pairs = []
    for cmp in comparisons:
        if cmp.a is None or cmp.b is None:
            continue
        ia, ib = index[cmp.a.key], index[cmp.b.key]
        entry: dict[str, Any] = {"label": cmp.label, "a": ia, "b": ib}
        for kind, ids in flips(cmp.a, cmp.b).items():
            entry[kind] = [{"id": i, "row": where[(ib, i)]} for i in ids]
            for item_id in ids:
                ra, rb = where[(ia, item_id)], where[(ib, item_id)]
                for mine, other in ((ra, rb), (rb, ra)):
                    rows[mine].setdefault("flip", kind)
                    rows[mine].setdefault("pair", other)
        pairs.append(entry)
    return {"evals": evals, "questions": questions, "items": rows, "comparisons": pairs}
