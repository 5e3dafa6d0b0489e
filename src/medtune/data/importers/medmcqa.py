"""MedMCQA JSONL: ``question``, ``opa``..``opd``, ``cop`` (1-based!), ``exp``, subject/topic, ``id``."""

from __future__ import annotations

from typing import Any

from ..quality import RecordError
from ..records import Answer, Record
from ._fields import as_int, build_record, letter_for_index, require_dict, text
from .base import ImportContext, Importer, RawRow

OPTION_FIELDS = ("opa", "opb", "opc", "opd")


class MedMCQAImporter(Importer):
    name = "medmcqa"
    description = "MedMCQA: question, opa..opd, cop (1-based index of the correct option), exp, subject_name, topic_name, id"

    def matches(self, row: Any) -> bool:
        return isinstance(row, dict) and {"question", "opa", "opb", "cop"} <= row.keys()

    def convert(self, row: RawRow, ctx: ImportContext) -> Record:
        data = require_dict(row.data, ctx)
        question = text(data, "question", ctx)
        options = {chr(65 + i): text(data, f, ctx) for i, f in enumerate(OPTION_FIELDS) if f in data}
        if "cop" not in data:
            raise RecordError("cop", "missing field")
        # MedMCQA's cop counts from 1 (1 -> opa -> "A"); reading it 0-based shifts every gold answer.
        letter = letter_for_index(as_int(data["cop"], "cop"), len(options), "cop", base=1)
        metadata = {
            key: data[src] for key, src in (("subject", "subject_name"), ("topic", "topic_name"), ("choice_type", "choice_type"))
            if data.get(src)
        }
        return build_record(
            id=str(data["id"]) if data.get("id") else None, source=self.name, task="mcq", question=question,
            options=options, answer=Answer(letter=letter, text=options[letter]),
            reasoning=text(data, "exp", ctx, required=False), metadata=metadata,
        )
