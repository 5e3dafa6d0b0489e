"""The seed guide's synthetic-case format: ``instruction``, ``input``, ``reasoning``, ``output``."""

from __future__ import annotations

from typing import Any, get_args

from ..records import Answer, Record, Task
from ._fields import build_record, require_dict, text
from .base import ImportContext, Importer, RawRow

TASKS = set(get_args(Task))


class ReasoningImporter(Importer):
    name = "reasoning"
    description = "Synthetic cases: instruction, input (case context), reasoning, output; optional task, metadata"

    def matches(self, row: Any) -> bool:
        return isinstance(row, dict) and {"instruction", "reasoning", "output"} <= row.keys()

    def convert(self, row: RawRow, ctx: ImportContext) -> Record:
        data = require_dict(row.data, ctx)
        output = text(data, "output", ctx)
        task = data.get("task") if data.get("task") in TASKS else "open"
        meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        return build_record(
            id=str(data["id"]) if data.get("id") else None, source=self.name, task=task,
            question=text(data, "instruction", ctx), context=text(data, "input", ctx, required=False),
            answer=Answer(text=output), reasoning=text(data, "reasoning", ctx, required=False), response=output,
            metadata=meta,
        )
