"""Benchmark contamination check: does a training set contain benchmark items?

Three signals, each indexed once over the benchmark in hash sets so that checking a
training record costs time linear in its length (no pairwise comparisons):

* word n-gram overlap (GPT-3 / lm-eval use 13 words): share of the record's n-grams that
  occur in any benchmark item;
* long-substring overlap (HuatuoGPT-o1 used 64 characters): any 64-character window of
  the record's question + context that occurs in a benchmark *question*. Benchmark contexts
  and options are left out of this index on purpose: on PubMedQA, abstracts share stock
  phrases ("sensitivity, specificity, positive predictive value and negative predictive
  value", instrument names) that made 5 unrelated abstracts match at 64 characters;
* exact match of the normalized question (catches benchmark items too short for either).

A record is flagged when its n-gram overlap reaches ``min_ngram_overlap`` or it shares a
long substring or an exact question with the benchmark.

``DEFAULT_BENCHMARKS`` is the list a check covers when the caller names none
(:func:`default_index`): the dev vignettes that ship with medtune always, the data-root
benchmarks when a data root is given.

>>> from medtune.data.records import Answer, Record
>>> mk = lambda q: Record.create(source="t", task="open", question=q, answer=Answer(text="a"))
>>> bench = BenchmarkIndex(n=5, substring=30)
>>> bench.add(mk("A 60-year-old smoker presents with painless hematuria and weight loss over three months."), "b1")
>>> bench.check(mk("Case: a 60-year-old smoker presents with painless hematuria and weight loss.")).flagged
True
>>> bench.check(mk("Which vitamin deficiency causes scurvy in sailors on long voyages?")).flagged
False
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .records import Record, normalize_text

_WORD = re.compile(r"\w+")

# Declared benchmarks (medtune.eval.benchmarks) a contamination check covers by default. The
# packaged dev vignettes are evaluation-only and need no data root, so every check includes them.
DEFAULT_BENCHMARKS: tuple[str, ...] = ("dev_vignettes", "medqa", "medmcqa", "pubmedqa", "mmlu_medical")


def contamination_text(record: Record) -> str:
    """Question, context and options: everything a model would see of a benchmark item."""
    opts = " ".join((record.options or {}).values())
    return normalize_text(f"{record.context or ''} {record.question} {opts}")


def word_ngrams(text: str, n: int) -> list[str]:
    """Word n-grams of normalized text; fewer than n words give no n-grams.

    >>> word_ngrams("The patient, a 5-year-old boy", 3)
    ['the patient a', 'patient a 5', 'a 5 year', '5 year old', 'year old boy']
    """
    words = _WORD.findall(text.lower())
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def char_windows(text: str, size: int) -> Iterator[str]:
    """Every ``size``-character window of the text with punctuation and spacing squeezed out."""
    squeezed = " ".join(_WORD.findall(text.lower()))
    for i in range(len(squeezed) - size + 1):
        yield squeezed[i:i + size]


@dataclass
class Hit:
    """Result of checking one record against the benchmark index."""

    record_id: str
    ngram_overlap: float = 0.0
    ngrams_matched: int = 0
    substring_match: bool = False
    exact_question: bool = False
    benchmark_ids: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.signals)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "flagged": self.flagged}


class BenchmarkIndex:
    """Hash sets of a benchmark's n-grams, long substrings and normalized questions."""

    def __init__(self, n: int = 13, substring: int = 64, min_ngram_overlap: float = 0.1) -> None:
        if n < 1 or substring < 8:
            raise ValueError(f"n must be >= 1 and substring >= 8 characters (got n={n}, substring={substring})")
        self.n, self.substring, self.min_ngram_overlap = n, substring, min_ngram_overlap
        self.ngrams: dict[int, str] = {}  # hash -> first benchmark id, for the report
        self.windows: set[int] = set()
        self.questions: dict[int, str] = {}
        self.items = 0

    def add(self, record: Record, bench_id: str | None = None) -> None:
        bench_id = bench_id or record.id
        text = contamination_text(record)
        for gram in word_ngrams(text, self.n):
            self.ngrams.setdefault(hash(gram), bench_id)
        self.windows.update(hash(w) for w in char_windows(record.question, self.substring))
        self.questions.setdefault(hash(normalize_text(record.question)), bench_id)
        self.items += 1

    def add_all(self, records: Iterable[Record], prefix: str = "") -> int:
        n = 0
        for record in records:
            self.add(record, f"{prefix}{record.id}")
            n += 1
        return n

    def check(self, record: Record) -> Hit:
        text = contamination_text(record)
        hit = Hit(record.id)
        grams = word_ngrams(text, self.n)
        ids: dict[str, int] = {}
        for gram in grams:
            bench_id = self.ngrams.get(hash(gram))
            if bench_id is not None:
                hit.ngrams_matched += 1
                ids[bench_id] = ids.get(bench_id, 0) + 1
        hit.ngram_overlap = round(hit.ngrams_matched / len(grams), 4) if grams else 0.0
        own = f"{record.question} {record.context or ''}"
        hit.substring_match = any(hash(w) in self.windows for w in char_windows(own, self.substring))
        q_id = self.questions.get(hash(normalize_text(record.question)))
        hit.exact_question = q_id is not None
        if q_id is not None:
            ids[q_id] = ids.get(q_id, 0) + 1
        hit.benchmark_ids = sorted(ids, key=lambda k: -ids[k])[:5]
        if hit.ngrams_matched and hit.ngram_overlap >= self.min_ngram_overlap:
            hit.signals.append("ngram")
        if hit.substring_match:
            hit.signals.append("substring")
        if hit.exact_question:
            hit.signals.append("exact_question")
        return hit


@dataclass
class ContaminationReport:
    checked: int = 0
    flagged: int = 0
    by_signal: dict[str, int] = field(default_factory=lambda: {"ngram": 0, "substring": 0, "exact_question": 0})
    hits: list[Hit] = field(default_factory=list)

    def record(self, hit: Hit) -> None:
        self.checked += 1
        if hit.flagged:
            self.flagged += 1
            self.hits.append(hit)
            for signal in hit.signals:
                self.by_signal[signal] += 1

    def to_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "flagged": self.flagged, "by_signal": self.by_signal,
                "hits": [h.to_dict() for h in self.hits]}


def filter_contaminated(records: Iterable[Record], index: BenchmarkIndex, report: ContaminationReport,
                        drop: bool = True) -> Iterator[Record]:
    """Yield records, checking each; with ``drop`` the flagged ones are left out."""
    for record in records:
        hit = index.check(record)
        report.record(hit)
        if not (drop and hit.flagged):
            yield record


def default_index(data_root: str | Path | None = None, names: Iterable[str] = DEFAULT_BENCHMARKS,
                  **index_options: Any) -> tuple[BenchmarkIndex, dict[str, int]]:
    """An index over the default benchmarks; returns it with the item count of each benchmark added.

    Benchmarks that ship with medtune (``packaged: true``) are always added; those read from a data
    root are added only when ``data_root`` is given (and then a missing file is an error), so a
    check without benchmark data still keeps the dev vignettes out of training sets.
    """
    from ..eval.benchmarks import get_benchmark, iter_benchmark_records

    index = BenchmarkIndex(**index_options)
    counts: dict[str, int] = {}
    for name in names:
        spec = get_benchmark(name)
        if not spec.packaged and data_root is None:
            continue
        counts[name] = index.add_all(iter_benchmark_records(spec, data_root), prefix=f"{name}:")
    return index, counts
