"""medtune's own record files: JSONL, one ``Record`` per line, written atomically.

``read_records`` is strict (stages downstream of import expect clean files): the first bad
line raises ``DataError`` naming file, line and field. Use ``medtune data validate`` or
``iter_records(path, "medtune", quarantine=...)`` to triage a dirty file instead.

>>> import tempfile, pathlib
>>> from medtune.data.records import Answer, Record
>>> p = pathlib.Path(tempfile.mkdtemp()) / "r.jsonl"
>>> write_records(p, [Record.create(source="t", task="open", question="Q?", answer=Answer(text="A."))])
1
>>> [r.question for r in read_records(p)]
['Q?']
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import ValidationError

from ..utils.io import atomic_open
from .importers.base import DataError
from .records import Record, error_field


def read_records(path: str | Path) -> Iterator[Record]:
    """Stream records from a medtune JSONL file (``.gz`` too); raise DataError at the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield Record.model_validate_json(line)
            except ValidationError as e:
                err = e.errors()[0]
                raise DataError(f"{path}:{lineno}: field {error_field(err, 'line')}: {err['msg']}") from None
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid UTF-8 ({e})") from None


def write_records(path: str | Path, records: Iterable[Record]) -> int:
    """Write records as JSONL atomically (temp file + rename); return how many were written."""
    n = 0
    with atomic_open(path, "w") as f:
        for record in records:
            f.write(record.model_dump_json(exclude_none=True))
            f.write("\n")
            n += 1
    return n

