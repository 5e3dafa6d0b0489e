"""medtune's own record JSONL (what ``medtune data import`` writes): validated against the schema."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..quality import RecordError
from ..records import Record, error_field
from .base import ImportContext, Importer, RawRow

REQUIRED = {"id", "source", "task", "question", "answer"}


class MedtuneImporter(Importer):
    name = "medtune"
    description = "medtune records: id, source, task, question, context, options, answer, reasoning, response, metadata"

    def matches(self, row: Any) -> bool:
        return isinstance(row, dict) and REQUIRED <= row.keys() and isinstance(row.get("answer"), dict)

    def convert(self, row: RawRow, ctx: ImportContext) -> Record:
        try:
            return Record.model_validate(row.data)
        except ValidationError as e:
            err = e.errors()[0]
            raise RecordError(error_field(err), err["msg"].removeprefix("Value error, ")) from None
