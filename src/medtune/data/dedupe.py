"""Exact and near-duplicate removal, streaming, with a cluster report.

Exact duplicates share ``content_id`` (normalized question + context + options). Near
duplicates are found with MinHash over word 3-gram shingles of question + context and a
MinHash LSH index (datasketch): each record is queried against the ones kept so far, so
the first occurrence is kept and later ones join its cluster. Jaccard ``threshold`` is the
knob (0.8 catches rephrasings that change a few words; lower it to catch more).

>>> from medtune.data.records import Answer, Record
>>> mk = lambda q: Record.create(source="t", task="open", question=q, answer=Answer(text="a"))
>>> qs = ["A 45-year-old man has crushing chest pain radiating to the left arm for two hours",
...       "A 45-year-old  MAN has crushing chest pain radiating to the left arm for two hours",
...       "a 45-year-old man has crushing chest pain radiating to the left arm for 2 hours",
...       "Which vitamin deficiency causes scurvy?"]
>>> report = DedupeReport()
>>> [r.question.split()[-1] for r in dedupe_records([mk(q) for q in qs], report, threshold=0.6)]
['hours', 'scurvy?']
>>> report.exact_removed, report.near_removed, len(report.clusters)
(1, 1, 1)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from datasketch import MinHash, MinHashLSH

from .records import Record, content_id, normalize_text

_WORD = re.compile(r"\w+")


@dataclass
class DedupeReport:
    """Counts plus one cluster per kept record that had duplicates (kept id -> removed ids)."""

    seen: int = 0
    kept: int = 0
    exact_removed: int = 0
    near_removed: int = 0
    conflicting_answers: int = 0
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, kept_id: str, removed_id: str, kind: str, conflict: bool) -> None:
        cluster = self.clusters.setdefault(kept_id, {"kept": kept_id, "exact": [], "near": [], "conflicting_answers": []})
        cluster[kind].append(removed_id)
        if conflict:
            cluster["conflicting_answers"].append(removed_id)
            self.conflicting_answers += 1

    def to_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "kept": self.kept, "exact_removed": self.exact_removed,
                "near_removed": self.near_removed, "conflicting_answers": self.conflicting_answers,
                "clusters": sorted(self.clusters.values(), key=lambda c: -(len(c["exact"]) + len(c["near"])))}


def dedupe_text(record: Record) -> str:
    """The text compared for near-duplicates: question plus context (and options), normalized.

    Options are included because MCQ banks reuse stems ("All of the following are true
    except:") whose options make them different questions.
    """
    opts = " ".join((record.options or {}).values())
    return normalize_text(f"{record.question} {record.context or ''} {opts}")


def shingles(text: str, k: int = 3) -> set[bytes]:
    """Word k-gram shingles (the whole text when shorter than k words).

    >>> sorted(shingles("a b c d", 3))
    [b'a b c', b'b c d']
    """
    words = _WORD.findall(text)
    if len(words) <= k:
        return {" ".join(words).encode()}
    return {" ".join(words[i:i + k]).encode() for i in range(len(words) - k + 1)}


def minhash(text: str, num_perm: int = 128, k: int = 3) -> MinHash:
    m = MinHash(num_perm=num_perm, seed=1)
    m.update_batch(list(shingles(text, k)))
    return m


def _answer_key(record: Record) -> str:
    return normalize_text(record.answer_text or record.answer.letter or "")


def dedupe_records(records: Iterable[Record], report: DedupeReport | None = None, *, near: bool = True,
                   threshold: float = 0.8, num_perm: int = 128, shingle_words: int = 3) -> Iterator[Record]:
    """Yield the first record of every exact / near-duplicate cluster; fill ``report`` as it goes.

    A duplicate whose gold answer differs from the kept one is counted in
    ``conflicting_answers``: two labels for one question usually means a labelling error.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
    report = report if report is not None else DedupeReport()
    exact: dict[str, tuple[str, str]] = {}
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm) if near else None
    answers: dict[str, str] = {}
    for record in records:
        report.seen += 1
        key = content_id(record.question, record.context, record.options)
        if key in exact:
            kept_id, kept_answer = exact[key]
            report.exact_removed += 1
            report.add(kept_id, record.id, "exact", kept_answer != _answer_key(record))
            continue
        if lsh is not None:
            mh = minhash(dedupe_text(record), num_perm, shingle_words)
            hits = lsh.query(mh)
            if hits:
                kept_id = min(hits, key=lambda h: int(h.split(":", 1)[0]))
                report.near_removed += 1
                report.add(kept_id.split(":", 1)[1], record.id, "near", answers[kept_id] != _answer_key(record))
                continue
            lsh_key = f"{report.kept}:{record.id}"  # LSH keys must be unique; ids may repeat across sources
            lsh.insert(lsh_key, mh)
            answers[lsh_key] = _answer_key(record)
        exact[key] = (record.id, _answer_key(record))
        report.kept += 1
        yield record
