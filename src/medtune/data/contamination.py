"""Benchmark contamination check: does a training set contain benchmark items?

Three signals, each indexed once over the benchmark in hash sets so that checking a
training record costs time linear in its length (no pairwise comparisons):

* word n-gram overlap (GPT-3 / lm-eval use 13 words): share of the record's n-grams (of its
  context and question) that occur in any benchmark item;
* long-substring overlap (HuatuoGPT-o1 used 64 characters): the share of one benchmark
  *question*'s 64-character windows that the record's question + context contains, flagged
  from ``min_substring_coverage`` (half). Benchmark contexts are left out of this index on
  purpose: on PubMedQA, abstracts share stock phrases ("sensitivity, specificity, positive
  predictive value and negative predictive value", instrument names) that made 5 unrelated
  abstracts match at 64 characters;
* exact match of the normalized question (catches benchmark items too short for either).

What is not evidence of a copied item is left out: n-grams and windows that two or more
different benchmark questions share (stock lines such as "Which of the following is the most
appropriate next step in management?"), a single shared window (MCQ phrasing no other benchmark
question happens to repeat), and answer options (every item about the same differential lists the
same diagnoses). Before these rules, 40% of 9,000 engine cases were flagged against MedQA, MMLU
and the dev vignettes; after them none are, while a copied stem still is (tests/unit/data).

A record is flagged when its n-gram overlap reaches ``min_ngram_overlap`` or it shares a
long substring or an exact question with the benchmark.

``DEFAULT_BENCHMARKS`` is the list a check covers when the caller names none
(:func:`default_index`): the dev vignettes that ship with medtune always, the data-root
benchmarks whose files are under the data root (the others are named as not checked).
`medtune data contamination` without ``--against`` and the data stage of `medtune run`
(``data.contamination``) use it, the latter with the run's ``eval.benchmarks`` added.

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


def declared_benchmarks(eval_benchmarks: Iterable[str] = ()) -> list[str]:
    """What training data is checked against: DEFAULT_BENCHMARKS and the run's eval.benchmarks.

    >>> declared_benchmarks(["medqa", "my.jsonl"])[-1]
    'my.jsonl'
    """
    return list(dict.fromkeys([*DEFAULT_BENCHMARKS, *eval_benchmarks]))


def contamination_text(record: Record) -> str:
    """Context and question: the text an item is written in. Options are left out on purpose: they
    are lists of diagnoses that every item about the same differential shares (a synthetic MCQ
    with a dev vignette's four options matched it on 13-grams of stock question + option names)."""
    return normalize_text(f"{record.context or ''} {record.question}")


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
    substring_coverage: float = 0.0
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

    def __init__(self, n: int = 13, substring: int = 64, min_ngram_overlap: float = 0.1,
                 min_substring_coverage: float = 0.5) -> None:
        if n < 1 or substring < 8:
            raise ValueError(f"n must be >= 1 and substring >= 8 characters (got n={n}, substring={substring})")
        self.n, self.substring, self.min_ngram_overlap = n, substring, min_ngram_overlap
        self.min_substring_coverage = min_substring_coverage
        self.ngrams: dict[int, str] = {}  # hash -> first benchmark id, for the report
        self.windows: dict[int, int] = {}  # window hash -> the question (index) it comes from
        self.question_windows: list[int] = []  # index -> how many windows that question has
        self.question_ids: list[str] = []  # index -> benchmark id
        # Stock phrasing: n-grams and windows found in two or more different benchmark questions
        # ("which of the following is the most appropriate next step in management") say nothing
        # about which item a record copies; they are not evidence.
        self.common_ngrams: set[int] = set()
        self.common_windows: set[int] = set()
        self.questions: dict[int, str] = {}
        self.items = 0
        self.skipped: dict[str, str] = {}  # benchmark -> why it is not in the index (default_index)

    def add(self, record: Record, bench_id: str | None = None) -> None:
        bench_id = bench_id or record.id
        grams = {hash(g) for g in word_ngrams(contamination_text(record), self.n)}
        question = hash(normalize_text(record.question))
        if question not in self.questions:  # a repeated question (a duplicate item) does not make its phrases common
            windows = {hash(w) for w in char_windows(record.question, self.substring)}
            self.common_ngrams |= grams & self.ngrams.keys()
            self.common_windows |= windows & self.windows.keys()
            index = len(self.question_windows)
            self.windows.update(dict.fromkeys(windows, index))
            self.question_windows.append(len(windows))
            self.question_ids.append(bench_id)
            self.questions[question] = bench_id
        for gram in grams:
            self.ngrams.setdefault(gram, bench_id)
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
            key = hash(gram)
            bench_id = self.ngrams.get(key) if key not in self.common_ngrams else None
            if bench_id is not None:
                hit.ngrams_matched += 1
                ids[bench_id] = ids.get(bench_id, 0) + 1
        hit.ngram_overlap = round(hit.ngrams_matched / len(grams), 4) if grams else 0.0
        hit.substring_coverage, question = self._substring_coverage(record)
        hit.substring_match = hit.substring_coverage >= self.min_substring_coverage
        if hit.substring_match:
            ids[self.question_ids[question]] = ids.get(self.question_ids[question], 0) + 1
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

    def _substring_coverage(self, record: Record) -> tuple[float, int]:
        """(the largest share of one benchmark question's windows that the record contains, that question's index).

        A share, not any one window: a copied stem brings most of its question's windows along,
        while MCQ stock lines ("... the most likely mechanism of this patient's condition?") share a
        few windows with many questions that no other benchmark question happens to repeat.
        """
        own = {hash(w) for w in char_windows(f"{record.question} {record.context or ''}", self.substring)}
        per_question: dict[int, int] = {}
        for h in own:
            question = self.windows.get(h)
            if question is not None and h not in self.common_windows:
                per_question[question] = per_question.get(question, 0) + 1
        if not per_question:
            return 0.0, -1
        best = max(per_question, key=lambda q: per_question[q] / self.question_windows[q])
        return round(per_question[best] / self.question_windows[best], 4), best


@dataclass
class ContaminationReport:
    checked: int = 0
    flagged: int = 0
    by_signal: dict[str, int] = field(default_factory=lambda: {"ngram": 0, "substring": 0, "exact_question": 0})
    hits: list[Hit] = field(default_factory=list)
    benchmarks: dict[str, int] = field(default_factory=dict)  # benchmark -> items indexed
    not_checked: dict[str, str] = field(default_factory=dict)  # declared benchmark -> why it could not be read
    quarantined: int = 0  # training rows the importer rejected (not checked; in the quarantine with file and line)

    def record(self, hit: Hit) -> None:
        self.checked += 1
        if hit.flagged:
            self.flagged += 1
            self.hits.append(hit)
            for signal in hit.signals:
                self.by_signal[signal] += 1

    def to_dict(self) -> dict[str, Any]:
        return {"benchmarks": self.benchmarks, "not_checked": self.not_checked, "checked": self.checked,
                "flagged": self.flagged, "quarantined": self.quarantined, "by_signal": self.by_signal,
                "hits": [h.to_dict() for h in self.hits]}


def filter_contaminated(records: Iterable[Record], index: BenchmarkIndex, report: ContaminationReport,
                        drop: bool = True) -> Iterator[Record]:
    """Yield records, checking each; with ``drop`` the flagged ones are left out."""
    for record in records:
        hit = index.check(record)
        report.record(hit)
        if not (drop and hit.flagged):
            yield record


def _data_root(data_root: str | Path | None) -> Path | None:
    """The data root a check reads: ``data_root``, else ``utils.paths.benchmark_data_root()`` (``$MEDTUNE_DATA_ROOT``,
    else ../shared/data beside a checkout), as ``eval.benchmarks.resolve_files`` and ``iter_benchmark_records`` do.
    Resolved once per check, so that the files found, the option files checked and the records read agree."""
    from ..utils.paths import benchmark_data_root

    return Path(data_root) if data_root is not None else benchmark_data_root()


def _option_files(spec: Any, root: Path | None) -> dict[str, Path]:
    """The files named by the benchmark's importer options (``*_file``, data-root relative; e.g. PubMedQA's test ids)."""
    return {key: Path(root or ".") / value for key, value in spec.importer_options.items()
            if key.endswith("_file") and isinstance(value, str)}


def _readable(name: str, root: Path | None) -> tuple[Any, str | None]:
    """(the benchmark's spec, None) when it can be read under ``root`` (already resolved: :func:`_data_root`),
    else (spec or None, why not)."""
    from ..eval.benchmarks import BenchmarkError, get_benchmark, resolve_files

    try:
        spec = get_benchmark(name)
    except BenchmarkError as e:
        return None, str(e)
    try:
        resolve_files(spec, root)
    except BenchmarkError as e:
        return spec, str(e)
    for key, path in _option_files(spec, root).items():
        if not path.is_file():
            return spec, f"benchmark {spec.name!r}: its {key} {path} is missing"
    return spec, None


def default_index(data_root: str | Path | None = None, names: Iterable[str] = DEFAULT_BENCHMARKS,
                  **index_options: Any) -> tuple[BenchmarkIndex, dict[str, int]]:
    """An index over the declared benchmarks; returns it with the item count of each benchmark added.

    ``names`` (default ``DEFAULT_BENCHMARKS``; benchmark names or record files) are added where
    they can be read: those that ship with medtune (``packaged: true``) always, those of a data
    root when their files are under ``data_root``. The others are listed in ``index.skipped`` with
    the reason, so a check without benchmark data still keeps the dev vignettes out of training
    sets and says what it did not check.
    """
    from ..eval.benchmarks import iter_benchmark_records

    root = _data_root(data_root)
    index = BenchmarkIndex(**index_options)
    counts: dict[str, int] = {}
    for name in dict.fromkeys(names):
        spec, why = _readable(name, root)
        if why:
            index.skipped[spec.name if spec else name] = why
        elif spec.name not in counts:
            counts[spec.name] = index.add_all(iter_benchmark_records(spec, root), prefix=f"{spec.name}:")
    return index, counts


def benchmark_files(data_root: str | Path | None = None, names: Iterable[str] = DEFAULT_BENCHMARKS) -> dict[str, list[Path | str]]:
    """The files ``default_index`` reads for ``names`` (the same rule and data root): what a check depends on,
    the files named by importer options (PubMedQA's test ids) included."""
    from ..eval.benchmarks import resolve_files

    root = _data_root(data_root)
    out: dict[str, list[Path | str]] = {}
    for name in dict.fromkeys(names):
        spec, why = _readable(name, root)
        if not why and spec.name not in out:
            out[spec.name] = [*resolve_files(spec, root), *_option_files(spec, root).values()]
    return out
