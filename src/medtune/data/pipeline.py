"""Data stage operations behind ``medtune data ...`` (the CLI only parses and prints).

Each function reads its inputs streaming, writes its outputs atomically into ``out_dir``
together with a ``manifest.json`` (inputs with sha256 and counts, options, outputs), and
returns a plain dict summary that the CLI renders and quickstart can log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..utils.io import atomic_open, atomic_write_json
from .contamination import (
    DEFAULT_BENCHMARKS,
    BenchmarkIndex,
    ContaminationReport,
    default_index,
    filter_contaminated,
)
from .contract import source_files
from .dedupe import DedupeReport, dedupe_records
from .importers import DataError, ImportStream, Quarantine, iter_records
from .io import write_records
from .manifest import build_manifest, file_entry, write_manifest
from .mix import MixSource, check_total, mix_datasets, resolve_mix_source
from .records import Record
from .split import SPLITS, SplitReport, check_split_options, split_records

RECORDS_NAME, QUARANTINE_NAME = "records.jsonl", "quarantine.jsonl"


def _file_summary(stream: ImportStream) -> dict[str, Any]:
    return {"format": stream.format, "seen": stream.seen, "accepted": stream.accepted,
            "quarantined": stream.rejected, "flagged": stream.flagged, "reasons": dict(stream.reasons)}


def _chain(streams: list[ImportStream]) -> Iterator[Record]:
    for stream in streams:
        yield from stream


def refuse_overwriting(outputs: dict[str, str | Path], inputs: list[str | Path]) -> None:
    """Raise DataError when an output (``{what: path}``) is one of the inputs: it would replace its own source."""
    from ..utils.paths import overwritten_input

    for what, path in outputs.items():
        hit = overwritten_input(path, inputs)
        if hit is not None:
            raise DataError(f"{what} {path} is the input file {hit}; write it elsewhere (the input is never replaced)")


def _folder_outputs(out_dir: Path, names: list[str]) -> dict[str, Path]:
    return {f"output {n}": out_dir / n for n in [*names, QUARANTINE_NAME, "manifest.json"]}


def import_files(sources: list[str | Path], out_dir: str | Path, fmt: str = "auto", *, dedupe: bool = False,
                 near_threshold: float = 0.8, **options: Any) -> dict[str, Any]:
    """Import source files into ``out_dir/records.jsonl`` (+ quarantine.jsonl, manifest.json).

    Rejected rows go to quarantine with file, line, field and reason; with ``dedupe`` exact
    and near duplicates are removed and their clusters written to ``dedupe.json``.
    Returns the summary (per-file counts; ``quarantined`` > 0 is what ``--strict`` fails on).
    """
    out_dir = Path(out_dir)
    files = source_files(sources, fmt)  # every source checked before anything is written
    quarantine = Quarantine(out_dir / QUARANTINE_NAME, keep_entries=False)
    streams = [iter_records(src, fmt, quarantine=quarantine, **options) for src in files]  # formats, options
    refuse_overwriting(_folder_outputs(out_dir, [RECORDS_NAME, "dedupe.json"]), files)
    out_dir.mkdir(parents=True, exist_ok=True)
    with quarantine:
        report = DedupeReport()
        records = dedupe_records(_chain(streams), report, threshold=near_threshold) if dedupe else _chain(streams)
        written = write_records(out_dir / RECORDS_NAME, records)
    files = {str(s.path): _file_summary(s) for s in streams}
    summary: dict[str, Any] = {
        "files": files, "written": written, "quarantined": quarantine.count,
        "seen": sum(f["seen"] for f in files.values()), "accepted": sum(f["accepted"] for f in files.values()),
    }
    outputs = [file_entry(out_dir / RECORDS_NAME, records=written),
               file_entry(out_dir / QUARANTINE_NAME, records=quarantine.count)]
    if dedupe:
        summary["dedupe"] = {k: v for k, v in report.to_dict().items() if k != "clusters"}
        atomic_write_json(out_dir / "dedupe.json", report.to_dict())
        outputs.append(file_entry(out_dir / "dedupe.json"))
    inputs = [file_entry(s.path, **_file_summary(s)) for s in streams]
    opts = {"format": fmt, "dedupe": dedupe, "near_threshold": near_threshold, **{k: str(v) for k, v in options.items()}}
    write_manifest(out_dir, build_manifest("import", inputs, outputs, opts, summary, records=RECORDS_NAME))
    return summary


def validate_files(sources: list[str | Path], fmt: str = "auto", quarantine_path: str | Path | None = None,
                   **options: Any) -> tuple[dict[str, Any], Quarantine]:
    """Check files without writing records (a split folder's val part too); returns per-file counts and the
    quarantine (first entries kept)."""
    with Quarantine(quarantine_path) as quarantine:
        streams = [iter_records(src, fmt, quarantine=quarantine, **options) for src in source_files(sources, fmt, val=True)]
        for stream in streams:
            for _ in stream:
                pass
    return {str(s.path): _file_summary(s) for s in streams}, quarantine


def split_file(sources: list[str | Path], out_dir: str | Path, val: float, test: float = 0.0, seed: int = 0,
               stratify: str | None = "source", fmt: str = "auto") -> dict[str, Any]:
    """Write train/val/test JSONL files (a split with fraction 0 is not written) + manifest.

    Rows the importer rejects go to ``out_dir/quarantine.jsonl`` with file, line, field and reason
    (counted in the summary's ``quarantined``), as ``import_files`` does.
    """
    out_dir = Path(out_dir)
    check_split_options(val, test, stratify)  # before anything is written
    report = SplitReport()
    wanted = [s for s in SPLITS if s == "train" or (s == "val" and val > 0) or (s == "test" and test > 0)]
    files = source_files(sources, fmt)
    quarantine = Quarantine(out_dir / QUARANTINE_NAME, keep_entries=False)
    streams = [iter_records(src, fmt, quarantine=quarantine) for src in files]
    refuse_overwriting(_folder_outputs(out_dir, [f"{s}.jsonl" for s in SPLITS]), files)
    with quarantine, _MultiWriter(out_dir, wanted) as handles:
        for name, record in split_records(_chain(streams), val, test, seed, stratify, report):
            handles.write(name, record)
    summary = {**report.to_dict(), "quarantined": quarantine.count}
    outputs = [file_entry(out_dir / f"{s}.jsonl", records=report.counts[s]) for s in wanted]
    outputs.append(file_entry(out_dir / QUARANTINE_NAME, records=quarantine.count))
    inputs = [file_entry(s.path, **_file_summary(s)) for s in streams]
    opts = {"val": val, "test": test, "seed": seed, "stratify": stratify, "format": fmt}
    write_manifest(out_dir, build_manifest("split", inputs, outputs, opts, summary,
                                           records={s: f"{s}.jsonl" for s in wanted}))
    return summary


class _MultiWriter:
    """Several atomic JSONL outputs open at once (all committed together on success)."""

    def __init__(self, out_dir: Path, names: list[str]) -> None:
        self.ctx = {n: atomic_open(out_dir / f"{n}.jsonl", "w") for n in names}
        self.fh: dict[str, Any] = {}

    def __enter__(self) -> _MultiWriter:
        self.fh = {n: c.__enter__() for n, c in self.ctx.items()}
        return self

    def write(self, name: str, record: Record) -> None:
        self.fh[name].write(record.model_dump_json(exclude_none=True) + "\n")

    def __exit__(self, *exc: Any) -> None:
        for c in self.ctx.values():
            c.__exit__(*exc)


def mix_files(sources: list[MixSource], out_dir: str | Path, total: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Mix sources by weight/cap into ``out_dir/records.jsonl`` and record every choice in the manifest.

    Rows the importer rejects go to ``out_dir/quarantine.jsonl`` with file, line, field and reason
    (per source in its entry's ``quarantined``), as ``import_files`` does.
    """
    out_dir = Path(out_dir)
    check_total(total)  # every option and source checked before anything is written
    sources = [resolve_mix_source(src) for src in sources]
    refuse_overwriting(_folder_outputs(out_dir, [RECORDS_NAME]), [s.path for s in sources])
    with Quarantine(out_dir / QUARANTINE_NAME, keep_entries=False) as quarantine:
        records, entries = mix_datasets(sources, total, seed, quarantine=quarantine)
        written = write_records(out_dir / RECORDS_NAME, records)
    inputs = [file_entry(e["path"], **{k: v for k, v in e.items() if k != "path"}) for e in entries]
    summary = {"written": written, "quarantined": quarantine.count, "sources": entries}
    outputs = [file_entry(out_dir / RECORDS_NAME, records=written),
               file_entry(out_dir / QUARANTINE_NAME, records=quarantine.count)]
    write_manifest(out_dir, build_manifest("mix", inputs, outputs, {"total": total, "seed": seed}, summary,
                                           records=RECORDS_NAME))
    return summary


def check_contamination(train: list[str | Path], against: list[str | Path] | None = None, *, n: int = 13, substring: int = 64,
                        min_ngram_overlap: float = 0.1, drop_to: str | Path | None = None,
                        report_path: str | Path | None = None, fmt: str = "auto",
                        against_options: dict[str, Any] | None = None, data_root: str | Path | None = None,
                        benchmarks: list[str] | None = None, quarantine: Quarantine | None = None) -> ContaminationReport:
    """Flag training records that overlap the benchmarks; optionally write the clean remainder to ``drop_to``.

    ``against``: benchmark files; without them, declared benchmarks (``contamination.default_index``:
    ``benchmarks`` or DEFAULT_BENCHMARKS, each where it can be read: packaged, or under ``data_root``).
    A row of a benchmark file that its importer rejects raises DataError naming file, line and field:
    a screen that silently skips benchmark items would call contaminated records clean.
    Rows of the training files that the importer rejects go to ``quarantine`` (counted in the report's
    ``quarantined``); without one, the first such row raises DataError, so ``drop_to`` never loses a row
    silently. ``drop_to`` may be a training file (the data stage drops in place); the CLI refuses that.
    """
    options = {"n": n, "substring": substring, "min_ngram_overlap": min_ngram_overlap}
    if against:
        index = BenchmarkIndex(**options)
        strict = Quarantine(refuse="every benchmark item must be indexed for the screen to be complete: "
                                   "fix or remove that row of the benchmark file, then check again")
        bench_counts = {str(b): index.add_all(iter_records(b, quarantine=strict, **(against_options or {})),
                                              prefix=f"{Path(b).name}:")
                        for b in against}
    else:
        index, bench_counts = default_index(data_root, benchmarks or DEFAULT_BENCHMARKS, **options)
    report = ContaminationReport(benchmarks=bench_counts, not_checked=dict(index.skipped))
    if quarantine is None:
        quarantine = Quarantine(refuse="pass a quarantine to set such rows aside")
    streams = [iter_records(src, fmt, quarantine=quarantine) for src in source_files(train, fmt)]
    records = filter_contaminated(_chain(streams), index, report, drop=drop_to is not None)
    if drop_to is not None:
        write_records(drop_to, records)
    else:
        for _ in records:
            pass
    report.quarantined = sum(s.rejected for s in streams)
    if report_path is not None:
        atomic_write_json(report_path, {"options": options, "train": [str(t) for t in train],
                                        "kept": report.checked - report.flagged if drop_to else None, **report.to_dict()})
    return report


def dataset_stats(sources: list[str | Path], tokenizer_spec: str | None = "smollm2-135m",
                  reasoning_format: str | None = None, max_length: int | None = 512,
                  png: str | Path | None = None, json_out: str | Path | None = None,
                  system_prompt: str | None = None) -> dict[str, Any]:
    """Counts plus token-length percentiles of the rendered samples (and a histogram PNG)."""
    from .stats import count_fields, length_summary, plot_histogram, token_lengths

    counts, records = count_fields(_chain([iter_records(s) for s in source_files(sources)]))
    stats: dict[str, Any] = {"counts": counts, "files": [str(s) for s in sources]}
    if tokenizer_spec:
        from ..models.load import load_tokenizer
        from ..models.source import resolve_source

        source = resolve_source(tokenizer_spec)
        fmt = reasoning_format or source.reasoning_format
        lengths = token_lengths(records, load_tokenizer(source), fmt, system_prompt)
        stats["tokens"] = length_summary(lengths, max_length)
        stats["protocol"] = f"tokens of the full rendered sample (chat template of {tokenizer_spec}, reasoning format {fmt})"
        if png and lengths.size:
            plot_histogram(lengths, png, f"{len(records)} records, {tokenizer_spec} tokenizer ({fmt})", max_length)
    if json_out:
        atomic_write_json(json_out, stats)
    return stats
