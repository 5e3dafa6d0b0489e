"""Importers: one module per source format, registered by name, auto-detected from the fields.

``iter_records(path)`` is the one entry point: it streams valid ``Record`` objects from a
file and sends every rejected row to the quarantine sink with file, line, field and reason.

>>> import json, tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "o1.jsonl"
>>> rows = [{"Question": "Fever and neck stiffness?", "Complex_CoT": "Think meningitis.", "Response": "Meningitis."},
...         {"Question": "", "Complex_CoT": "x", "Response": "y"}]
>>> _ = p.write_text("\\n".join(json.dumps(r) for r in rows) + "\\n")
>>> detect_format(p)
'medical_o1'
>>> q = Quarantine()
>>> [r.response for r in iter_records(p, quarantine=q)], q.entries[0].line, q.entries[0].reason
(['Meningitis.'], 2, 'empty string')
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..quality import DEFAULT_MAX_CHARS, Quarantine, RecordError, check_record
from ..records import Record
from .base import (
    DEFAULT_MAX_LINE_BYTES,
    DataError,
    ImportContext,
    Importer,
    RawRow,
    iter_raw_rows,
    sniff_rows,
)
from .medical_o1 import MedicalO1Importer
from .medmcqa import MedMCQAImporter
from .medqa import MedQAImporter
from .medtune_jsonl import MedtuneImporter
from .messages import MessagesImporter
from .mmlu import MMLUImporter
from .pubmedqa import PubMedQAImporter
from .reasoning import ReasoningImporter
from .reasonmed import ReasonMedImporter

# Detection order matters: specific schemas first, generic chat formats last.
IMPORTERS: dict[str, Importer] = {
    imp.name: imp
    for imp in (
        MedtuneImporter(), PubMedQAImporter(), MedMCQAImporter(), MedQAImporter(), MMLUImporter(),
        MedicalO1Importer(), ReasoningImporter(), ReasonMedImporter(), MessagesImporter(),
    )
}

__all__ = [
    "IMPORTERS", "DataError", "ImportStream", "Importer", "Quarantine", "detect_format", "get_importer",
    "iter_records",
]


def get_importer(name: str) -> Importer:
    try:
        return IMPORTERS[name]
    except KeyError:
        raise DataError(f"unknown format {name!r}; known formats: auto, {', '.join(IMPORTERS)}") from None


def detect_format(path: str | Path) -> str:
    """Name of the importer whose fields match most of the first rows of ``path``."""
    path = Path(path)
    rows = sniff_rows(path)
    if not rows:
        raise DataError(f"{path}: no parseable rows to detect the format from; pass --format explicitly")
    votes: Counter = Counter()
    for row in rows:
        for name, imp in IMPORTERS.items():
            if imp.matches(row):
                votes[name] += 1
                break
    if not votes:
        raise DataError(f"{path}: cannot detect the format from {_fields_text(rows[0])}; "
                        f"pass --format (one of {', '.join(IMPORTERS)})")
    return votes.most_common(1)[0][0]


FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,39}")


def _fields_text(row: Any) -> str:
    """The first row's field names for an error message; names that do not look like field names (a CSV
    without a header row, whose first row is a record) are counted, never printed: they may be patient text."""
    if not isinstance(row, dict):
        return f"{len(row)} headerless columns"
    names = sorted(map(str, row))
    shown = [n for n in names if FIELD_NAME.fullmatch(n)]
    if len(shown) == len(names):
        return f"fields {shown}"
    return (f"{len(names)} columns ({len(names) - len(shown)} of whose names do not look like field names and are not "
            f"shown: a file without a header row?{f' named: {shown}' if shown else ''})")


class ImportStream:
    """Iterator over the valid records of one file; ``seen``/``accepted``/``rejected`` count as it goes.

    The invariant ``seen == accepted + rejected`` holds at every point of the iteration.
    """

    def __init__(self, path: str | Path, fmt: str = "auto", *, quarantine: Quarantine | str | Path | None = None,
                 max_chars: int = DEFAULT_MAX_CHARS, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 duplicate_options: str = "flag", **options: Any) -> None:
        self.path = Path(path)
        self.format = detect_format(self.path) if fmt == "auto" else fmt
        self.importer = get_importer(self.format)
        unknown = sorted(set(options) - set(self.importer.options))
        if unknown:
            allowed = ", ".join(self.importer.options) or "none"
            raise DataError(f"importer {self.format!r} does not take option(s) {unknown}; it takes: {allowed}")
        if duplicate_options not in ("flag", "reject"):
            raise DataError(f"duplicate_options must be 'flag' or 'reject', got {duplicate_options!r}")
        self.duplicate_options = duplicate_options
        self.flagged = 0
        # A path instead of a sink: this stream owns the file and commits it when iteration ends.
        self._owns_quarantine = quarantine is not None and not isinstance(quarantine, Quarantine)
        self.quarantine = Quarantine(quarantine, keep_entries=False) if self._owns_quarantine else quarantine
        self.max_line_bytes = max_line_bytes
        self.ctx = ImportContext(self.path, options, max_chars)
        self.seen = self.accepted = self.rejected = 0
        self.reasons: Counter = Counter()
        self._iter = self._generate()

    def __iter__(self) -> ImportStream:
        return self

    def __next__(self) -> Record:
        return next(self._iter)

    def close(self) -> None:
        """Stop early; a quarantine file this stream owns is committed with what it has so far."""
        self._iter.close()

    def _reject(self, row: RawRow, err: RecordError) -> None:
        self.rejected += 1
        self.reasons[err.reason.split(":", 1)[0]] += 1
        if self.quarantine is not None:
            self.quarantine.add(self.path, row.loc, err.field, err.reason, raw=row.raw)

    def _generate(self) -> Iterator[Record]:
        if self._owns_quarantine:
            self.quarantine.__enter__()
            try:
                yield from self._rows()
            finally:  # also on early close (a caller's limit): keep what was quarantined so far
                self.quarantine.__exit__(None, None, None)
        else:
            yield from self._rows()

    def _rows(self) -> Iterator[Record]:
        self.importer.setup(self.ctx)
        for row in iter_raw_rows(self.path, csv_header=self.importer.csv_header, max_line_bytes=self.max_line_bytes):
            if not self.importer.keep(row, self.ctx):
                continue  # filtered out by an option (e.g. PubMedQA ids_file), not an error
            self.seen += 1
            if row.error is not None:
                self._reject(row, row.error)
                continue
            try:
                record = check_record(self.importer.convert(row, self.ctx), self.ctx.max_chars, self.duplicate_options)
            except RecordError as e:
                self._reject(row, e)
                continue
            self.accepted += 1
            self.flagged += bool(record.metadata.get("quality_flags"))
            yield record


def iter_records(path: str | Path, fmt: str = "auto", *, quarantine: Quarantine | str | Path | None = None,
                 **options: Any) -> Iterator[Record]:
    """Stream the valid records of one file (JSON, JSONL, CSV, Parquet, .gz variants).

    Every rejected row goes to ``quarantine`` (source file, line, field, reason) when given
    (a ``Quarantine`` sink, or a path: a JSONL file written when the iteration ends);
    otherwise it is skipped and counted on the returned ``ImportStream`` (``.rejected``).
    ``options`` are importer-specific, e.g. ``ids_file=`` / ``exclude_ids_file=`` for pubmedqa,
    plus ``max_chars`` (per text field), ``max_line_bytes`` (per JSONL line) and
    ``duplicate_options`` ("flag" keeps and flags such items, "reject" quarantines them).
    """
    return ImportStream(path, fmt, quarantine=quarantine, **options)
