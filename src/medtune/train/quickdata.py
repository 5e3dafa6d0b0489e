"""A compact synthetic training set for CPU demos (quickstart, the slow end-to-end test).

Full synthetic vignettes run 450-850 SmolLM2 tokens (vitals, labs, imaging). A 2-core CPU
trains ~100-200 tokens/s, so minutes of training need samples of ~150 tokens: this keeps each
case's presenting complaint and symptoms (the first two sentences of the vignette), the
question and the options, a reasoning trace limited to those same findings (so the reasoning
never cites data the shortened question no longer shows), and the gold answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..data.records import Record
from ..utils.io import atomic_write_jsonl

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def compact_record(record: Record, sentences: int = 2, findings: int = 3) -> Record:
    """Short form of one synthetic case record (see the module docstring).

    >>> from medtune.data.records import Answer
    >>> r = Record.create(source="s", task="diagnosis", answer=Answer(text="Croup"),
    ...     question="A 3-year-old boy presents with cough. He reports stridor. Vital signs: normal.\\n\\nWhat is the most likely diagnosis?",
    ...     reasoning="Key findings: 3-year-old boy with cough; stridor; normal vitals.\\nConclusion: croup.",
    ...     response="The most likely diagnosis is Croup. Next step: dexamethasone.")
    >>> c = compact_record(r)
    >>> print(c.question)
    A 3-year-old boy presents with cough. He reports stridor.
    <BLANKLINE>
    What is the most likely diagnosis?
    >>> print(c.reasoning)
    Key findings: 3-year-old boy with cough; stridor; normal vitals.
    Conclusion: these findings point to Croup.
    >>> c.response
    'The most likely diagnosis is Croup.'
    """
    paragraphs = record.question.strip().split("\n\n")
    stem = " ".join(_SENTENCE_END.split(paragraphs[0])[:sentences])
    question = stem if len(paragraphs) == 1 else f"{stem}\n\n{paragraphs[-1]}"
    answer = record.answer_text or ""
    reasoning = None
    first = (record.reasoning or "").splitlines()[0] if record.reasoning else ""
    if first.startswith("Key findings:") and answer:
        items = [x.strip().rstrip(".") for x in first[len("Key findings:"):].split(";") if x.strip()]
        reasoning = f"Key findings: {'; '.join(items[:findings])}.\nConclusion: these findings point to {answer}."
    response = _SENTENCE_END.split(record.response.strip())[0] if record.response else None
    return record.model_copy(update={"question": question, "reasoning": reasoning, "response": response,
                                     "context": None, "metadata": {**record.metadata, "compacted": True}})


def compact_records(records: Iterable[Record], **kw: int) -> Iterator[Record]:
    for r in records:
        yield compact_record(r, **kw)


def write_demo_training_set(path: str | Path, n_cases: int = 500, seed: int = 0,
                            specialties: list[str] | None = None, tasks: tuple[str, ...] = ("diagnosis", "mcq")) -> int:
    """Synthesize ``n_cases`` cases (one record per task each), compact them, write JSONL; returns the count.

    500 cases x (diagnosis, mcq) = 1,000 records, ~150 SmolLM2 tokens each.
    """
    from ..synth.engine import generate_records

    records = generate_records(n_cases, seed, specialties=specialties or None, tasks=list(tasks))
    return atomic_write_jsonl(path, (r.model_dump(mode="json") for r in compact_records(records)))
