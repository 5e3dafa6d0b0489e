"""``scan_jsonl``: redact a JSONL file of ``{"id", "text"}`` lines into ``{"id", "redacted", "spans"}``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ...utils.io import atomic_write_jsonl
from .. import SecurityError
from .detector import PhiDetector, default_detector


def _rows(path: Path) -> Iterator[tuple[int | str, object, str]]:
    from ...data.importers.base import iter_raw_rows  # the one JSONL reader

    for raw in iter_raw_rows(path):
        if raw.error is not None:
            raise SecurityError(f"{path}:{raw.loc}: {raw.error.reason}")
        if "id" not in raw.data:
            raise SecurityError(f"{path}:{raw.loc}: field `id` is missing")
        if not isinstance(raw.data.get("text"), str):
            raise SecurityError(f"{path}:{raw.loc}: field `text` is missing or not a string")
        yield raw.loc, raw.data["id"], raw.data["text"]


def scan_jsonl(src: str | Path, out: str | Path, detector: PhiDetector | None = None) -> dict[str, int]:
    """Redact every line of ``src`` into ``out`` (atomically: only if every line of ``src`` is valid).

    Returns the count of identifiers found per type (plus ``lines``).
    """
    from ...utils.paths import overwritten_input

    src, out = Path(src), Path(out)
    if overwritten_input(out, [src]):
        raise SecurityError(f"--out {out} is the input file; write the redacted copy elsewhere")
    detector = detector or default_detector()
    counts: Counter = Counter()

    def redacted() -> Iterator[dict]:
        for _, row_id, text in _rows(src):
            red = detector.redact(text)
            counts.update(red.counts)
            yield {"id": row_id, "redacted": red.text, "spans": [s.to_json() for s in red.spans]}

    # streamed into a temp file; a bad line raises and the temp file is removed, so `out` is untouched
    lines = atomic_write_jsonl(out, redacted())
    return {"lines": lines, **dict(sorted(counts.items()))}
