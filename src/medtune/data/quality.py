"""Record validation and the quarantine sink.

A malformed input never aborts an import: each rejection becomes one quarantine entry
naming the source file, line, field and reason, so a user can fix the source and re-run.
The invariant every importer keeps is ``seen == accepted + quarantined``.

>>> q = Quarantine()
>>> q.add("x.jsonl", 3, "question", "empty question", raw='{"question": ""}')
>>> q.count, q.by_reason["empty question"], q.entries[0].line
(1, 1, 3)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..utils.io import atomic_open
from .records import Record

# C0/C1 control characters other than tab, newline and carriage return: they come from
# broken encodings or binary junk and tokenize into garbage.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
RAW_PREVIEW_CHARS = 300
DEFAULT_MAX_CHARS = 200_000


class RecordError(ValueError):
    """One record cannot be accepted; ``field`` names the offending field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class QuarantineEntry:
    file: str
    line: int | str
    field: str
    reason: str
    raw: str = ""

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False)


@dataclass
class Quarantine:
    """Collects rejected inputs; with ``path`` it streams them to a JSONL file written atomically.

    Use as a context manager when a path is given, so the file is committed on exit.
    Without a path it keeps the entries in memory (tests, ``validate`` summaries).
    With ``refuse`` (why no row may be left out) it is a sink that takes nothing: the first
    rejected row raises ``DataError`` naming file, line, field and reason, followed by ``refuse``
    (inputs that define what is measured: the items scored, the benchmark a screen checks against).
    """

    path: str | Path | None = None
    keep_entries: bool = True
    refuse: str | None = None
    count: int = 0
    by_reason: Counter = field(default_factory=Counter)
    by_file: Counter = field(default_factory=Counter)
    entries: list[QuarantineEntry] = field(default_factory=list)
    _ctx: Any = None
    _fh: IO | None = None

    def __enter__(self) -> Quarantine:
        if self.path is not None:
            self._ctx = atomic_open(self.path, "w")
            self._fh = self._ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
            self._ctx = self._fh = None

    def add(self, file: str | Path, line: int | str, field: str, reason: str, raw: str = "") -> None:
        if self.refuse is not None:
            from .importers.base import DataError

            raise DataError(f"{file}:{line}: field {field}: {reason}; {self.refuse}")
        entry = QuarantineEntry(str(file), line, field, reason, raw[:RAW_PREVIEW_CHARS])
        self.count += 1
        self.by_reason[_reason_key(reason)] += 1
        self.by_file[str(file)] += 1
        if self._fh is not None:
            self._fh.write(entry.to_json() + "\n")
        if self.keep_entries and (self._fh is None or len(self.entries) < 1000):
            self.entries.append(entry)


def _reason_key(reason: str) -> str:
    """Group reasons for the summary table: drop the specific values after a colon."""
    return reason.split(":", 1)[0]


def check_text(name: str, value: Any, *, required: bool, max_chars: int) -> str | None:
    """Validate one text field and return it stripped (None when absent and optional).

    >>> check_text("question", "  Why?  ", required=True, max_chars=100)
    'Why?'
    >>> check_text("question", 3, required=True, max_chars=100)
    Traceback (most recent call last):
    ...
    medtune.data.quality.RecordError: question: non-text value of type int
    """
    if value is None:
        if required:
            raise RecordError(name, "missing field")
        return None
    if not isinstance(value, str):
        raise RecordError(name, f"non-text value of type {type(value).__name__}")
    if len(value) > max_chars:
        raise RecordError(name, f"over-long: {len(value)} characters > limit {max_chars}")
    if _CONTROL.search(value):
        pos = _CONTROL.search(value).start()
        raise RecordError(name, f"control character: U+{ord(value[pos]):04X} at offset {pos}")
    value = value.strip()
    if required and not value:
        raise RecordError(name, "empty string")
    return value or None


def check_record(record: Record, max_chars: int = DEFAULT_MAX_CHARS, duplicate_options: str = "flag") -> Record:
    """Checks every importer applies after building a record (beyond the schema's own).

    Rejects empty answers, control characters and over-long fields. Duplicate option texts
    are rejected with ``duplicate_options="reject"``; the default ``"flag"`` keeps the record
    and lists the problem in ``metadata["quality_flags"]``, because benchmark files must keep
    their official item count (MedMCQA dev has 21 such items) for scores to be comparable.
    """
    for name in ("question", "context", "reasoning", "response"):
        check_text(name, getattr(record, name), required=name == "question", max_chars=max_chars)
    if record.options is not None:
        if len(record.options) < 2:
            raise RecordError("options", f"needs at least 2 options, got {len(record.options)}")
        seen: dict[str, str] = {}
        for letter, text in record.options.items():
            t = check_text(f"options.{letter}", text, required=True, max_chars=max_chars)
            key = " ".join(t.lower().split())
            if key in seen:
                problem = f"duplicate options: {seen[key]} and {letter} are both {t[:60]!r}"
                if duplicate_options == "reject":
                    raise RecordError("options", problem)
                record.metadata.setdefault("quality_flags", []).append(problem)
            seen[key] = letter
    if record.answer.text is not None:
        check_text("answer.text", record.answer.text, required=record.answer.letter is None, max_chars=max_chars)
    if record.options is not None and record.answer.letter is None:
        raise RecordError("answer", "multiple-choice record without an answer letter")
    return record
