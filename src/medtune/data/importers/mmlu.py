"""MMLU CSV: headerless rows ``question, A, B, C, D, answer``; the subject comes from the file name."""

from __future__ import annotations

from typing import Any

from ..quality import RecordError, check_text
from ..records import Answer, Record
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
            raise RecordError("answer", f"answer {letter!r} is not among the options {sorted(options)}")
        return build_record(
            source=self.name, task="mcq", question=question, options=options,
            answer=Answer(letter=letter, text=options[letter]), metadata={"subject": subject_from_path(ctx.path.name)},
        )
