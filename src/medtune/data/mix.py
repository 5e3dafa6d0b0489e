"""Mix several datasets with weights or caps (the seed's multi-dataset QLoRA recipe).

Per source: ``weight`` alone scales the source (0.5 keeps half, 2.0 repeats it twice);
with a ``total`` the weights become shares of that total; ``cap`` bounds the count after
weighting. Which items are kept is deterministic: the ones with the smallest hash position
(``split.split_position``), so a capped sample is stable and needs memory only for the
items it keeps. Repeats (weights above 1 or shares above the source size) are whole
passes plus a hash-ordered remainder. The result is shuffled by hash and every choice is
recorded in the data manifest.

>>> parse_mix_spec("data/medqa.jsonl:weight=2:cap=500")
MixSource(path='data/medqa.jsonl', weight=2.0, cap=500, format='auto')
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from .importers import DataError, Quarantine, iter_records
from .records import Record
from .split import split_position


@dataclass
class MixSource:
    path: str
    weight: float | None = None
    cap: int | None = None
    format: str = "auto"


def parse_mix_spec(spec: str) -> MixSource:
    """``PATH[:weight=W][:cap=N][:format=F]`` -> MixSource (a bare ``PATH:W`` means weight W).

    PATH may be ``hf:ID[:CONFIG][@SPLIT]``: a bare non-numeric part right after the id is its CONFIG.

    >>> parse_mix_spec("hf:owner/name:en@train:cap=100")
    MixSource(path='hf:owner/name:en@train', weight=None, cap=100, format='auto')
    """
    parts = spec.split(":")
    path, opts = parts[0], parts[1:]
    if path == "hf" and opts:
        path, opts = f"hf:{opts[0]}", opts[1:]
        if opts and "=" not in opts[0] and not _is_number(opts[0]):
            path, opts = f"{path}:{opts[0]}", opts[1:]
    src = MixSource(path)
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq:
            key, value = "weight", key
        try:
            if key == "weight":
                src.weight = float(value)
            elif key == "cap":
                src.cap = int(value)
            elif key == "format":
                src.format = value
            else:
                raise ValueError(key)
        except ValueError:
            raise DataError(f"mix spec {spec!r}: bad option {opt!r}; use PATH[:weight=W][:cap=N][:format=F]") from None
    if (src.weight is not None and src.weight < 0) or (src.cap is not None and src.cap < 0):
        raise DataError(f"mix spec {spec!r}: weight and cap must be >= 0")
    return src


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def planned_counts(sources: list[MixSource], available: list[int], total: int | None) -> list[int]:
    """How many items each source contributes (before any cap is larger than what exists).

    >>> planned_counts([MixSource("a", weight=3), MixSource("b", weight=1)], [100, 100], total=80)
    [60, 20]
    >>> planned_counts([MixSource("a", weight=0.5), MixSource("b", cap=10)], [100, 100], total=None)
    [50, 10]
    """
    weights = [1.0 if s.weight is None else s.weight for s in sources]
    counts = []
    for src, w, n in zip(sources, weights, available):
        if total is not None:
            count = round(total * w / sum(weights)) if sum(weights) else 0
        else:
            count = round(n * w)
        if src.cap is not None:
            count = min(count, src.cap)
        counts.append(count)
    return counts


def check_total(total: int | None) -> None:
    """Refuse a total the config field ``data.mix_total`` would refuse (at least 1, or None: no total).

    >>> check_total(0)
    Traceback (most recent call last):
    ...
    medtune.data.importers.base.DataError: mix total 0: Input should be greater than or equal to 1 (data.mix_total)
    """
    from pydantic import TypeAdapter, ValidationError

    from ..config.sections.data import DataSection

    info = DataSection.model_fields["mix_total"]
    try:
        TypeAdapter(Annotated[(info.annotation, *info.metadata)]).validate_python(total)
    except ValidationError as e:
        raise DataError(f"mix total {total}: {e.errors()[0]['msg']} (data.mix_total)") from None


def resolve_mix_source(src: MixSource) -> MixSource:
    """The source with its path resolved to the one records file (a medtune folder or hf: spec is accepted)."""
    from .contract import resolve_records

    files = resolve_records(src.path, src.format).files
    if len(files) != 1:
        raise DataError(f"{src.path}: holds {len(files)} record files; mix them as separate sources")
    return MixSource(files[0], src.weight, src.cap, src.format)


def _count(src: MixSource, options: dict[str, Any], quarantine: Quarantine | None = None) -> tuple[int, int]:
    """(valid records, rejected rows) of one source; the rejected ones go to ``quarantine`` (this pass only:
    the passes that take records skip the same rows again)."""
    stream = iter_records(src.path, src.format, quarantine=quarantine, **options)
    return sum(1 for _ in stream), stream.rejected


def take_records(src: MixSource, count: int, available: int, seed: int, options: dict[str, Any]) -> list[Record]:
    """``count`` items of one source: whole passes for repeats, then the hash-smallest remainder."""
    if available == 0 or count == 0:
        return []
    passes, remainder = divmod(count, available)
    out: list[Record] = []
    for _ in range(passes):
        out.extend(iter_records(src.path, src.format, **options))
    if remainder:
        keyed = ((split_position(r, seed), i, r) for i, r in enumerate(iter_records(src.path, src.format, **options)))
        out.extend(r for _, _, r in heapq.nsmallest(remainder, keyed))
    return out


def _shuffle_key(seed: int, index: int, record: Record) -> bytes:
    return hashlib.sha256(f"{seed}:{index}:{record.id}".encode()).digest()


def mix_datasets(sources: list[MixSource], total: int | None = None, seed: int = 0,
                 options: dict[str, Any] | None = None, quarantine: Quarantine | None = None,
                 ) -> tuple[Iterator[Record], list[dict[str, Any]]]:
    """Return (shuffled mixed records, one manifest entry per source with available/taken/quarantined counts).

    Rows the importer rejects are never mixed; they go to ``quarantine`` (file, line, field, reason) when given.
    """
    if not sources:
        raise DataError("mix needs at least one source")
    check_total(total)
    options = options or {}
    sources = [resolve_mix_source(src) for src in sources]
    counted = [_count(s, options, quarantine) for s in sources]
    available = [n for n, _ in counted]
    counts = planned_counts(sources, available, total)
    chosen: list[tuple[bytes, Record]] = []
    entries = []
    for src, (n_avail, n_bad), n_take in zip(sources, counted, counts):
        records = take_records(src, n_take, n_avail, seed, options)
        chosen.extend((_shuffle_key(seed, i, r), r) for i, r in enumerate(records))
        entries.append({**asdict(src), "available": n_avail, "quarantined": n_bad, "taken": len(records),
                        "repeated": len(records) > n_avail})
    chosen.sort(key=lambda kr: kr[0])
    return (r for _, r in chosen), entries
