"""Field access helpers shared by importers: every failure names the field it came from."""

from __future__ import annotations

import string
from typing import Any

from pydantic import ValidationError

from ..quality import RecordError, check_text
from ..records import Record
from .base import ImportContext

LETTERS = string.ascii_uppercase


def text(row: dict[str, Any], name: str, ctx: ImportContext, *, required: bool = True) -> str | None:
    """A stripped text field; missing/empty/non-text raise RecordError naming ``name``."""
    if name not in row:
        if required:
            raise RecordError(name, "missing field")
        return None
    return check_text(name, row[name], required=required, max_chars=ctx.max_chars)


def require_dict(row: Any, ctx: ImportContext) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise RecordError("row", f"expected an object with named fields, got {type(row).__name__}")
    return row


def letter_for_index(index: int, n_options: int, field: str, base: int = 0) -> str:
    """Letter for an option index (``base=1`` for 1-based sources such as MedMCQA's ``cop``).

    >>> letter_for_index(1, 4, "cop", base=1)
    'A'
    """
    i = index - base
    if not 0 <= i < n_options:
        raise RecordError(field, f"answer index {index} out of range for {n_options} options ({base}-based)")
    return LETTERS[i]


def as_int(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise RecordError(field, "non-integer value of type bool")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise RecordError(field, f"non-integer value: {str(value)[:60]!r}")


def build_record(**fields: Any) -> Record:
    """``Record.create`` with schema errors turned into RecordError naming the field."""
    try:
        return Record.create(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "record"
        msg = err["msg"].removeprefix("Value error, ")
        if "not among the options" in msg:
            loc = "answer"
        raise RecordError(loc, msg) from None
