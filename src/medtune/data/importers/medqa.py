"""MedQA (USMLE) JSONL: ``question``, ``options`` {A..}, ``answer_idx`` (letter), ``answer`` (text)."""

from __future__ import annotations

from typing import Any

from ..quality import RecordError
from ..records import Answer, Record
from ._fields import build_record, require_dict, text
from .base import ImportContext, Importer, RawRow


def mcq_options(value: Any, field: str, ctx: ImportContext) -> dict[str, str]:
    """Validate a {letter: text} mapping (or a list, lettered A, B, ...)."""
    if isinstance(value, list):
        value = {chr(65 + i): v for i, v in enumerate(value)}
    if not isinstance(value, dict) or not value:
        raise RecordError(field, f"expected a non-empty object of letter -> text, got {type(value).__name__}")
    opts = {}
    for k, v in value.items():
        opts[str(k).strip().upper()] = text({f"{field}.{k}": v}, f"{field}.{k}", ctx)
    return opts


class MedQAImporter(Importer):
    name = "medqa"
    description = "MedQA: question, options {A..}, answer_idx (letter), optional answer text and meta_info"

    def matches(self, row: Any) -> bool:
        return isinstance(row, dict) and {"question", "options", "answer_idx"} <= row.keys()

    def convert(self, row: RawRow, ctx: ImportContext) -> Record:
        data = require_dict(row.data, ctx)
        question = text(data, "question", ctx)
        options = mcq_options(data.get("options"), "options", ctx)
        letter = text(data, "answer_idx", ctx).upper()
        if letter not in options:
            raise RecordError("answer_idx", f"answer letter is not among the options {sorted(options)}: {letter!r}")
        gold_text = text(data, "answer", ctx, required=False)
        if gold_text and " ".join(gold_text.split()) != " ".join(options[letter].split()):
            raise RecordError("answer", f"answer text differs from option {letter}: {gold_text[:60]!r}")
        metadata = {k: data[k] for k in ("meta_info", "metamap_phrases") if k in data}
        return build_record(
            id=str(data["id"]) if data.get("id") else None, source=self.name, task="mcq", question=question,
            options=options, answer=Answer(letter=letter, text=options[letter]), metadata=metadata,
        )
