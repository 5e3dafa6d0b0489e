"""medical-o1-reasoning-SFT (FreedomIntelligence): ``Question``, ``Complex_CoT``, ``Response``.

The format of the MediMind and "R1-Distill-8B on 6 GB" recipes: open questions with a long
chain of thought; the response is the gold answer text.
"""

from __future__ import annotations

from typing import Any

from ..records import Answer, Record
from ._fields import build_record, require_dict, text
from .base import ImportContext, Importer, RawRow


class MedicalO1Importer(Importer):
    name = "medical_o1"
    description = "medical-o1-reasoning-SFT: Question, Complex_CoT, Response"

    def matches(self, row: Any) -> bool:
        return isinstance(row, dict) and {"Question", "Response"} <= row.keys()

    def convert(self, row: RawRow, ctx: ImportContext) -> Record:
        data = require_dict(row.data, ctx)
        question = text(data, "Question", ctx)
        response = text(data, "Response", ctx)
        return build_record(
            id=str(data["id"]) if data.get("id") else None, source=self.name, task="open", question=question,
            answer=Answer(text=response), reasoning=text(data, "Complex_CoT", ctx, required=False), response=response,
        )
