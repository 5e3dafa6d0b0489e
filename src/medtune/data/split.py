"""Deterministic hash-based train/val/test splits.

Each item's split is a pure function of its content and the seed: ``u = sha256(seed,
content_id) / 2**64`` in [0, 1), then ``u < test -> test``, ``u < test + val -> val``, else
train. Consequences worth knowing:

* an item keeps its split when the dataset grows or is reordered (no re-shuffling), so
  a model never trains on last month's validation items;
* exact duplicates (same normalized question/context/options, even from two sources)
  land in the same split, so they cannot leak across it;
* the records of one synthetic case (``metadata.group_id`` / ``case_id``: its diagnosis and
  MCQ records and its demographic twins share a vignette under different questions) are
  drawn as one item, so a case is never on both sides (a validation loss measured on its
  twin's vignette would be a training loss). Such records are keyed by their case, not their
  content: two cases that happen to read the same are drawn apart (``data.dedupe`` removes them);
* the draw is independent per item, so every stratum (source, subject) gets the target
  shares in expectation; ``SplitReport.by_stratum`` shows the realized shares. Forcing
  exact per-stratum counts would need a re-shuffle whenever a stratum grows, which is
  exactly the instability this design avoids.

>>> from medtune.data.records import Answer, Record
>>> r = Record.create(source="t", task="open", question="Why?", answer=Answer(text="Because."))
>>> assign_split(r, val=0.1, test=0.1, seed=0) == assign_split(r, val=0.1, test=0.1, seed=0)
True
>>> split_position(r, 0) != split_position(r, 1)
True
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .records import Record, content_id

SPLITS = ("train", "val", "test")


def split_key(record: Record) -> str:
    """What decides a record's side: its case when it has one (``group_id``, else ``case_id``), else its content.

    >>> from medtune.data.records import Answer, Record
    >>> a = Record.create(source="t", task="mcq", question="Most likely diagnosis?", options={"A": "x", "B": "y"},
    ...                   answer=Answer(letter="A"), metadata={"case_id": "syn-0-000001"})
    >>> b = Record.create(source="t", task="open", question="What is the diagnosis?", answer=Answer(text="x"),
    ...                   metadata={"case_id": "syn-0-000001"})
    >>> split_key(a) == split_key(b) == "case:syn-0-000001"
    True
    """
    case = record.metadata.get("group_id") or record.metadata.get("case_id")
    return f"case:{case}" if case else content_id(record.question, record.context, record.options)


def split_position(record: Record, seed: int = 0) -> float:
    """The item's uniform position in [0, 1): depends only on its ``split_key`` and the seed."""
    digest = hashlib.sha256(f"{seed}:{split_key(record)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def check_fractions(val: float, test: float = 0.0) -> None:
    if val < 0 or test < 0 or val + test >= 1:
        raise ValueError(f"val ({val}) and test ({test}) fractions must be >= 0 and sum to less than 1")


def check_split_options(val: float, test: float = 0.0, stratify: str | None = "source") -> None:
    """Raise ValueError for fractions or a stratify key that ``split_records`` would refuse (checked before writing).

    >>> check_split_options(0.1, 0.1, "subject")
    >>> check_split_options(1.5)
    Traceback (most recent call last):
    ...
    ValueError: val (1.5) and test (0.0) fractions must be >= 0 and sum to less than 1
    """
    check_fractions(val, test)
    if stratify not in _STRATA:
        raise _unknown_stratum(stratify)


def assign_split(record: Record, val: float, test: float = 0.0, seed: int = 0) -> str:
    check_fractions(val, test)
    u = split_position(record, seed)
    if u < test:
        return "test"
    return "val" if u < test + val else "train"


def _subject(record: Record) -> str:
    return str(record.metadata.get("subject") or record.metadata.get("specialty") or "unknown")


_STRATA: dict[str | None, Callable[[Record], str]] = {  # stratify key -> the stratum of a record
    None: lambda r: "all", "none": lambda r: "all", "source": lambda r: r.source, "task": lambda r: r.task,
    "subject": _subject, "specialty": _subject}


def _unknown_stratum(by: str | None) -> ValueError:
    return ValueError(f"unknown stratify key {by!r}: use source, subject, task or none")


def stratum_of(record: Record, by: str | None) -> str:
    """Stratum key: ``source``, ``subject`` (metadata subject/specialty), ``task``, or None for one stratum."""
    if by not in _STRATA:
        raise _unknown_stratum(by)
    return _STRATA[by](record)


@dataclass
class SplitReport:
    counts: Counter = field(default_factory=Counter)
    by_stratum: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))

    def to_dict(self) -> dict[str, Any]:
        strata = {}
        for name, c in sorted(self.by_stratum.items()):
            total = sum(c.values())
            strata[name] = {s: c[s] for s in SPLITS} | {"total": total,
                                                        "val_share": round(c["val"] / total, 4) if total else 0.0,
                                                        "test_share": round(c["test"] / total, 4) if total else 0.0}
        return {"counts": {s: self.counts[s] for s in SPLITS}, "by_stratum": strata}


def split_records(records: Iterable[Record], val: float, test: float = 0.0, seed: int = 0,
                  stratify: str | None = "source", report: SplitReport | None = None) -> Iterator[tuple[str, Record]]:
    """Yield ``(split, record)`` pairs, streaming; fill ``report`` with per-stratum counts."""
    report = report if report is not None else SplitReport()
    for record in records:
        name = assign_split(record, val, test, seed)
        report.counts[name] += 1
        report.by_stratum[stratum_of(record, stratify)][name] += 1
        yield name, record
