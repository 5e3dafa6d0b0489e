"""MMLU CSV: headerless rows ``question, A, B, C, D, answer``; the subject comes from the file name.

MMLU has no item ids, so an item's id is its subject and the hash of its content
(``clinical_knowledge/1f0c...``). The subject is part of the id because MMLU asks some
questions in two subjects (78 of clinical_knowledge's are also in college_medicine): they are
two items, asked with different subject lines, as lm-evaluation-harness scores them, and a
content hash alone would give both the same id.
"""

from __future__ import annotations

from typing import Any

from ..quality import RecordError, check_text
from ..records import Answer, Record, content_id
from ._fields import build_record
from .base import ImportContext, Importer, RawRow


def subject_from_path(name: str) -> str:
    """``anatomy_test.csv`` -> ``anatomy``.

    >>> subject_from_path("clinical_knowledge_test.csv.gz")
    'clinical_knowledge'
    """
    stem = name.split(".")[0]
    for suffix in ("_test", "_dev", "_val", "_train"):
        stem = stem.removesuffix(suffix)
    return stem


def item_id(subject: str, question: str, options: dict[str, str]) -> str:
    """``SUBJECT/CONTENT_HASH``: stable across machines, and distinct for one question asked in two subjects.

    >>> item_id("anatomy", "Q?", {"A": "x", "B": "y"}) == item_id("anatomy", " q? ", {"A": "x", "B": "y"})
    True
    >>> item_id("anatomy", "Q?", {"A": "x", "B": "y"}) == item_id("college_medicine", "Q?", {"A": "x", "B": "y"})
    False
    """
    return f"{subject}/{content_id(question, None, options)}"


class MMLUImporter(Importer):
    name = "mmlu"
    description = "MMLU: headerless CSV question, A, B, C, D, answer letter (subject from the file name)"
    csv_header = False

    def matches(self, row: Any) -> bool:
        return (isinstance(row, list) and len(row) >= 4 and len(row[-1].strip()) == 1
                and row[-1].strip().upper() in "ABCDEFGHIJ")

    def convert(self, row: RawRow, ctx: ImportContext) -> Record:
        cells = row.data
        if not isinstance(cells, list) or len(cells) < 4:
            raise RecordError("row", f"expected question, options..., answer; got {len(cells) if isinstance(cells, list) else 0} cells")
        question = check_text("question", cells[0], required=True, max_chars=ctx.max_chars)
        options = {chr(65 + i): check_text(f"option {chr(65 + i)}", c, required=True, max_chars=ctx.max_chars)
                   for i, c in enumerate(cells[1:-1])}
        letter = cells[-1].strip().upper()
        if letter not in options:
            raise RecordError("answer", f"answer letter is not among the options {sorted(options)}: {letter!r}")
        subject = subject_from_path(ctx.path.name)
        return build_record(
            id=item_id(subject, question, options), source=self.name, task="mcq", question=question, options=options,
            answer=Answer(letter=letter, text=options[letter]), metadata={"subject": subject},
        )
