"""The one record schema every medtune stage reads and writes (JSONL on disk).

>>> r = Record.create(source="demo", task="mcq", question="Which vitamin deficiency causes scurvy?",
...                   options={"A": "Vitamin A", "B": "Vitamin C"}, answer=Answer(letter="B"))
>>> r.answer.letter, r.options[r.answer.letter], len(r.id)
('B', 'Vitamin C', 16)
>>> Record.model_validate_json(r.model_dump_json()) == r
True
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Task = Literal["mcq", "open", "diagnosis", "management"]


class FieldValueError(ValueError):
    """A check across fields failed; ``field`` names the one at fault (a model validator's error has no location)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def error_field(err: Any, default: str = "record") -> str:
    """The dotted field of one pydantic error (``ValidationError.errors()`` item), else ``default``.

    >>> from pydantic import ValidationError
    >>> try:
    ...     Record(id="x", source="s", task="mcq", question="Q?", options={"A": "a", "B": "b"}, answer=Answer(letter="Z"))
    ... except ValidationError as e:
    ...     error_field(e.errors()[0])
    'answer.letter'
    """
    loc = ".".join(str(p) for p in err.get("loc") or ())
    return loc or getattr((err.get("ctx") or {}).get("error"), "field", None) or default


class Answer(BaseModel):
    """Gold answer: the option letter for multiple choice and/or the answer text."""

    model_config = ConfigDict(extra="forbid")
    letter: str | None = Field(None, description="Option letter (A, B, ...) for multiple choice.")
    text: str | None = Field(None, description="Answer text (the option's text, a label, or a reference answer).")

    @model_validator(mode="after")
    def _not_empty(self) -> Answer:
        if not (self.letter or (self.text and self.text.strip())):
            raise ValueError("answer needs a letter or a non-empty text")
        return self


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="The source's own id when it has one, else a stable content hash.")
    source: str = Field(description="Where the record came from (importer name or dataset).")
    task: Task
    question: str = Field(min_length=1)
    context: str | None = None
    options: dict[str, str] | None = Field(None, description="Letter -> option text, for multiple choice.")
    answer: Answer
    reasoning: str | None = Field(None, description="Chain of thought leading to the answer.")
    response: str | None = Field(None, description="Final response in prose, if the source has one.")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _answer_among_options(self) -> Record:
        if self.options is not None and self.answer.letter is not None and self.answer.letter not in self.options:
            raise FieldValueError("answer.letter",
                                  f"answer letter is not among the options {sorted(self.options)}: {self.answer.letter!r}")
        return self

    @classmethod
    def create(cls, **fields: Any) -> Record:
        """Build a record, deriving a stable id from the content when none is given."""
        if not fields.get("id"):
            fields["id"] = content_id(fields.get("question", ""), fields.get("context"), fields.get("options"))
        return cls(**fields)

    @property
    def answer_text(self) -> str | None:
        if self.answer.text:
            return self.answer.text
        if self.options and self.answer.letter:
            return self.options.get(self.answer.letter)
        return None


def normalize_text(text: str) -> str:
    """Lowercase, NFKC, collapse whitespace: the form used for hashing and exact dedupe.

    >>> normalize_text("  A  58-year-old\\nMAN ")
    'a 58-year-old man'
    """
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\s+", " ", text).strip()


def content_id(question: str, context: str | None = None, options: dict[str, str] | None = None) -> str:
    """Stable 16-hex id of the normalized content (same content -> same id on any machine)."""
    payload = json.dumps(
        [normalize_text(question), normalize_text(context or ""), {k: normalize_text(v) for k, v in sorted((options or {}).items())}],
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
