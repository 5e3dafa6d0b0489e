"""ReasonMed: role-based ``conversations`` JSONL and its Alpaca-style ``instruction``/``input``/``output`` files.

In the Alpaca files the instruction is the question and ``input`` (when not empty) is
extra context; the output carries the reasoning and the answer, split on the usual
``<think>`` / ``## Thinking`` markers.
"""

from __future__ import annotations

from typing import Any

from ..records import Answer, Record
from ..render import split_reasoning
from ._fields import build_record, require_dict, text
from .base import ImportContext, Importer, RawRow
from .messages import conversation_record, parse_turns


class ReasonMedImporter(Importer):
    name = "reasonmed"
    description = "ReasonMed: conversations [{role, content}] or Alpaca instruction/input/output"

    def matches(self, row: Any) -> bool:
        if not isinstance(row, dict):
            return False
        turns = row.get("conversations")
        if isinstance(turns, list) and turns and isinstance(turns[0], dict):
            return "role" in turns[0]
        return {"instruction", "output"} <= row.keys()

    def convert(self, row: RawRow, ctx: ImportContext) -> Record:
        data = require_dict(row.data, ctx)
        if "conversations" in data:
            return conversation_record(parse_turns(data["conversations"], "conversations", ctx), self.name, data)
        output = text(data, "output", ctx)
        reasoning, final = split_reasoning(output)
        return build_record(
            id=str(data["id"]) if data.get("id") else None, source=self.name, task="open",
            question=text(data, "instruction", ctx), context=text(data, "input", ctx, required=False),
            answer=Answer(text=final or output), reasoning=reasoning or None, response=final or output,
        )
