"""PubMedQA: the ori_pqal.json object keyed by PubMed id (QUESTION, CONTEXTS, final_decision, LONG_ANSWER).

Also reads the Hugging Face layout (``pubid``, ``question``, ``context.contexts``, ``long_answer``).
Options ``ids_file`` / ``exclude_ids_file`` take a JSON object or list whose keys/items are
PubMed ids, e.g. the official ``test_ground_truth.json`` (keep only the 500 test items, or
drop them to train without contaminating the test set).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..quality import RecordError
from ..records import Answer, Record
from ._fields import build_record, require_dict, text
from .base import DataError, ImportContext, Importer, RawRow

OPTIONS = {"A": "yes", "B": "no", "C": "maybe"}
LETTER = {v: k for k, v in OPTIONS.items()}


def load_id_file(path: str | Path) -> set[str]:
    """PubMed ids from a JSON object (its keys) or list (its items)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the id file ({e})") from e
    if isinstance(doc, dict):
        return {str(k) for k in doc}
    if isinstance(doc, list):
        return {str(x) for x in doc}
    raise DataError(f"{path}: an id file must be a JSON object or list, got {type(doc).__name__}")


def _listish(value: Any) -> list[Any]:
    """ori_pqal sometimes stores lists; HF exports may store them as JSON/Python-literal strings."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.startswith("["):
        import ast

        try:
            parsed = ast.literal_eval(value)
            return parsed if isinstance(parsed, list) else [value]
        except (ValueError, SyntaxError):
            return [value]
    return [] if value is None else [value]


class PubMedQAImporter(Importer):
    name = "pubmedqa"
    description = "PubMedQA: ori_pqal.json {pmid: {QUESTION, CONTEXTS, final_decision, LONG_ANSWER}} or HF pubid/question/context"
    options = ("ids_file", "exclude_ids_file")

    def matches(self, row: Any) -> bool:
        return isinstance(row, dict) and "final_decision" in row and ("QUESTION" in row or "pubid" in row)

    def setup(self, ctx: ImportContext) -> None:
        for opt in self.options:
            if ctx.options.get(opt):
                ctx.state[opt] = load_id_file(ctx.options[opt])

    def _pmid(self, row: RawRow) -> str | None:
        if row.key is not None:
            return row.key
        if isinstance(row.data, dict) and row.data.get("pubid") is not None:
            return str(row.data["pubid"])
        return None

    def keep(self, row: RawRow, ctx: ImportContext) -> bool:
        pmid = self._pmid(row)
        if "ids_file" in ctx.state and pmid not in ctx.state["ids_file"]:
            return False
        return not ("exclude_ids_file" in ctx.state and pmid in ctx.state["exclude_ids_file"])

    def convert(self, row: RawRow, ctx: ImportContext) -> Record:
        data = require_dict(row.data, ctx)
        pmid = self._pmid(row)
        if not pmid:
            raise RecordError("pubid", "missing PubMed id (object key or pubid field)")
        hf = "QUESTION" not in data
        question = text(data, "question" if hf else "QUESTION", ctx)
        ctx_field = data.get("context") if hf else data.get("CONTEXTS")
        contexts = _listish(ctx_field.get("contexts") if isinstance(ctx_field, dict) else ctx_field)
        if not contexts or not all(isinstance(c, str) for c in contexts):
            raise RecordError("CONTEXTS", "expected a non-empty list of abstract sections")
        decision = (text(data, "final_decision", ctx) or "").lower()
        if decision not in LETTER:
            raise RecordError("final_decision", f"expected yes, no or maybe: got {decision!r}")
        meta_src = ctx_field if hf and isinstance(ctx_field, dict) else data
        metadata = {"year": data.get("YEAR"), "meshes": _listish(meta_src.get("meshes" if hf else "MESHES")),
                    "labels": _listish(meta_src.get("labels" if hf else "LABELS"))}
        return build_record(
            id=pmid, source=self.name, task="mcq", question=question, context="\n".join(c.strip() for c in contexts),
            options=dict(OPTIONS), answer=Answer(letter=LETTER[decision], text=decision),
            response=text(data, "long_answer" if hf else "LONG_ANSWER", ctx, required=False),
            metadata={k: v for k, v in metadata.items() if v},
        )
