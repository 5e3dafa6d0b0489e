"""Streaming row readers (JSONL, JSON, CSV, Parquet, gzip) and the importer interface.

Readers yield ``RawRow`` objects one at a time, so memory stays flat however long the
file is (JSON arrays and objects are the exception: the stdlib parses them whole, so use
JSONL or Parquet for very large sources). A row that cannot even be parsed (bad JSON,
invalid UTF-8, a line over the size limit) comes out as a ``RawRow`` with ``error`` set,
and the importer sends it to quarantine instead of converting it.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..quality import DEFAULT_MAX_CHARS, RecordError
from ..records import Record

DEFAULT_MAX_LINE_BYTES = 1 << 20  # 1 MiB: far above any real QA item, far below a runaway line
TABULAR = {".csv", ".tsv", ".parquet"}


class DataError(ValueError):
    """A whole file cannot be imported (unreadable, unknown format, bad option): fix and re-run."""


@dataclass
class RawRow:
    """One parsed input row: ``loc`` is the 1-based line (JSONL/CSV), item or row number, or JSON key."""

    loc: int | str
    data: Any = None
    key: str | None = None
    error: RecordError | None = None
    raw: str = ""


@dataclass
class ImportContext:
    """What an importer may look at besides the row: the file, its options and limits."""

    path: Path
    options: dict[str, Any] = field(default_factory=dict)
    max_chars: int = DEFAULT_MAX_CHARS
    state: dict[str, Any] = field(default_factory=dict)


class Importer:
    """One source format. Subclasses set ``name``/``description`` and implement ``matches`` and ``convert``.

    ``convert`` raises ``RecordError(field, reason)`` for a bad row; it never returns None.
    ``options`` lists the importer-specific keyword options ``iter_records`` accepts.
    """

    name: str = ""
    description: str = ""
    csv_header: bool = True
    options: tuple[str, ...] = ()

    def matches(self, row: Any) -> bool:
        raise NotImplementedError

    def setup(self, ctx: ImportContext) -> None:
        """Prepare per-file state (e.g. load an id list); called once before the first row."""

    def keep(self, row: RawRow, ctx: ImportContext) -> bool:
        """False drops the row silently because an option filters it out (it is not counted as seen)."""
        return True

    def convert(self, row: RawRow, ctx: ImportContext) -> Record:
        raise NotImplementedError


def base_suffix(path: Path) -> str:
    """The format suffix, ignoring a trailing .gz (``x.jsonl.gz`` -> ``.jsonl``)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def open_binary(path: Path) -> IO[bytes]:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def iter_raw_rows(path: str | Path, *, csv_header: bool = True,
                  max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[RawRow]:
    """Yield the rows of one file, choosing the reader from the suffix (``.jsonl``, ``.json``, ``.csv``...).

    An ``hf:ID[:CONFIG][@SPLIT]`` spec reads a Hugging Face dataset's rows instead (``data/hf.py``).
    """
    from ..hf import is_hf_spec, iter_hf_rows

    if is_hf_spec(path):
        yield from iter_hf_rows(path)
        return
    path = Path(path)
    suffix = base_suffix(path)
    if suffix in (".jsonl", ".ndjson"):
        yield from _iter_jsonl(path, max_line_bytes)
    elif suffix == ".json":
        yield from _iter_json(path)
    elif suffix in (".csv", ".tsv"):
        yield from _iter_csv(path, csv_header, "\t" if suffix == ".tsv" else ",")
    elif suffix == ".parquet":
        yield from _iter_parquet(path)
    else:
        raise DataError(f"{path}: unknown file type {suffix!r}; expected .jsonl, .json, .csv, .tsv or .parquet (optionally .gz)")


def _iter_jsonl(path: Path, max_line_bytes: int) -> Iterator[RawRow]:
    with open_binary(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if len(line) > max_line_bytes:
                err = RecordError("line", f"over-long line: {len(line)} bytes > limit {max_line_bytes}")
                yield RawRow(lineno, error=err, raw=line[:200].decode("utf-8", "replace"))
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                err = RecordError("line", f"invalid UTF-8: byte 0x{line[e.start]:02x} at offset {e.start}")
                yield RawRow(lineno, error=err, raw=line[:200].decode("utf-8", "replace"))
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                yield RawRow(lineno, error=RecordError("line", f"bad JSON: {e.msg} at column {e.colno}"), raw=text)
                continue
            if not isinstance(data, dict):
                yield RawRow(lineno, error=RecordError("line", f"not a JSON object: {type(data).__name__}"), raw=text)
                continue
            yield RawRow(lineno, data, raw=text)


def _iter_json(path: Path) -> Iterator[RawRow]:
    with open_binary(path) as f:
        try:
            doc = json.load(io.TextIOWrapper(f, encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: not valid JSON ({e}); for one record per line use .jsonl") from e
    if isinstance(doc, dict) and len(doc) == 1 and isinstance(next(iter(doc.values())), list):
        doc = next(iter(doc.values()))  # {"data": [...]} wrappers
    if isinstance(doc, list):
        for i, item in enumerate(doc, start=1):
            if isinstance(item, dict):
                yield RawRow(i, item)
            else:
                yield RawRow(i, error=RecordError("item", f"not a JSON object: {type(item).__name__}"), raw=str(item))
    elif isinstance(doc, dict) and doc and all(isinstance(v, dict) for v in doc.values()):
        for key, item in doc.items():  # keyed object, e.g. PubMedQA {pmid: {...}}
            yield RawRow(key, item, key=str(key))
    elif isinstance(doc, dict):
        yield RawRow(1, doc)
    else:
        raise DataError(f"{path}: top-level JSON must be an object or a list, got {type(doc).__name__}")


def _iter_csv(path: Path, header: bool, delimiter: str) -> Iterator[RawRow]:
    with open_binary(path) as fb:
        # errors="replace" keeps the stream going past a bad byte; rows holding U+FFFD are rejected below.
        text = io.TextIOWrapper(fb, encoding="utf-8", errors="replace", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        columns: list[str] | None = None
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield RawRow(reader.line_num, error=RecordError("line", f"bad CSV: {e}"))
                continue
            if not cells or not any(c.strip() for c in cells):
                continue
            if header and columns is None:
                columns = [c.strip() for c in cells]
                continue
            joined = delimiter.join(cells)
            if "\ufffd" in joined:
                yield RawRow(reader.line_num, error=RecordError("line", "invalid UTF-8"), raw=joined)
            elif columns is not None:
                if len(cells) != len(columns):
                    err = RecordError("line", f"wrong column count: {len(cells)} cells, header has {len(columns)}")
                    yield RawRow(reader.line_num, error=err, raw=joined)
                else:
                    yield RawRow(reader.line_num, dict(zip(columns, cells)), raw=joined)
            else:
                yield RawRow(reader.line_num, cells, raw=joined)


def _iter_parquet(path: Path) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: not a readable Parquet file ({e})") from e
    n = 0
    for batch in pf.iter_batches(batch_size=2048):
        for row in batch.to_pylist():
            n += 1
            yield RawRow(n, row)


def sniff_rows(path: str | Path, limit: int = 20) -> list[Any]:
    """The first ``limit`` parseable rows (dicts, or lists for headerless CSV) for format detection."""
    from ..hf import is_hf_spec, iter_hf_rows

    if is_hf_spec(path):
        return [row.data for row in iter_hf_rows(path, limit=limit)]
    path = Path(path)
    header = base_suffix(path) not in (".csv", ".tsv") or _csv_has_header(path)
    rows = []
    for row in iter_raw_rows(path, csv_header=header):
        if row.error is None:
            rows.append(row.data)
        if len(rows) >= limit:
            break
    return rows


def _csv_has_header(path: Path) -> bool:
    """A CSV whose first row's last cell is a bare answer letter has no header (MMLU style)."""
    for row in iter_raw_rows(path, csv_header=False):
        if row.error is None:
            last = str(row.data[-1]).strip()
            return not (len(last) == 1 and last.isalpha() and last.isupper())
    return True
