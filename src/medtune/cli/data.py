"""`medtune data import|validate|stats|split|mix|contamination|dedupe`: thin wrappers over medtune.data.

Other modules may add commands to ``data_app`` (e.g. ``preview`` from cli/data_preview.py).
Exit codes: 0 ok, 1 ``--strict`` found rejected rows, 2 bad input file or option.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from .common import console, fail

data_app = typer.Typer(
    help="Import, validate, dedupe, check contamination, split, mix and inspect training data.",
    no_args_is_help=True,
)

FORMAT_HELP = "Importer name (medqa, medmcqa, pubmedqa, mmlu, medical_o1, reasonmed, reasoning, messages, medtune) or auto."
OPTION_HELP = "Importer option KEY=VALUE, repeatable (e.g. ids_file=test_ground_truth.json for pubmedqa)."


def _options(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            fail(f"--option {pair!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _run(fn, *args, **kwargs):
    """Call a data function; file-level problems become a clean exit 2 naming the file."""
    from ..data.importers import DataError

    try:
        return fn(*args, **kwargs)
    except (DataError, ValueError) as e:
        fail(str(e))


def _files_table(files: dict[str, dict]) -> Table:
    table = Table("file", "format", "seen", "accepted", "quarantined", "flagged", "top reasons")
    for path, f in files.items():
        reasons = ", ".join(f"{k} ({v})" for k, v in sorted(f["reasons"].items(), key=lambda kv: -kv[1])[:3])
        table.add_row(Path(path).name, f["format"], str(f["seen"]), str(f["accepted"]), str(f["quarantined"]),
                      str(f["flagged"]), reasons or "-")
    return table


@data_app.command("import")
def import_cmd(
    sources: list[Path] = typer.Argument(..., help="Source files (JSON, JSONL, CSV, Parquet, .gz)."),
    out: Path = typer.Option(..., "--out", help="Output folder: records.jsonl, quarantine.jsonl, manifest.json."),
    fmt: str = typer.Option("auto", "--format", help=FORMAT_HELP),
    option: list[str] = typer.Option(None, "--option", help=OPTION_HELP),
    dedupe: bool = typer.Option(False, help="Remove exact and near duplicates (report in dedupe.json)."),
    near_threshold: float = typer.Option(0.8, help="MinHash Jaccard threshold for near duplicates."),
    reject_duplicate_options: bool = typer.Option(False, help="Quarantine MCQs with two identical options (default: flag)."),
    strict: bool = typer.Option(False, help="Exit 1 if any row was quarantined."),
) -> None:
    """Import source files into medtune records, quarantining every bad row with its line and reason."""
    from ..data.pipeline import import_files

    opts = _options(option) | ({"duplicate_options": "reject"} if reject_duplicate_options else {})
    summary = _run(import_files, sources, out, fmt, dedupe=dedupe, near_threshold=near_threshold, **opts)
    console.print(_files_table(summary["files"]))
    if dedupe:
        d = summary["dedupe"]
        console.print(f"dedupe: {d['exact_removed']} exact and {d['near_removed']} near duplicates removed "
                      f"({d['conflicting_answers']} with a different answer); clusters in {out / 'dedupe.json'}")
    console.print(f"{summary['written']} records -> {out / 'records.jsonl'}; "
                  f"{summary['quarantined']} quarantined -> {out / 'quarantine.jsonl'}")
    if strict and summary["quarantined"]:
        fail(f"--strict: {summary['quarantined']} row(s) rejected; see {out / 'quarantine.jsonl'}", code=1)


@data_app.command("validate")
def validate_cmd(
    sources: list[Path] = typer.Argument(..., help="Files to check."),
    fmt: str = typer.Option("auto", "--format", help=FORMAT_HELP),
    option: list[str] = typer.Option(None, "--option", help=OPTION_HELP),
    quarantine: Path = typer.Option(None, help="Also write every rejected row to this JSONL file."),
    strict: bool = typer.Option(False, help="Exit 1 if any row is rejected."),
) -> None:
    """Check files and list rejected rows (file:line field: reason) without writing records."""
    from ..data.pipeline import validate_files

    files, q = _run(validate_files, sources, fmt, quarantine, **_options(option))
    console.print(_files_table(files))
    for e in q.entries[:20]:
        console.print(f"{e.file}:{e.line} {e.field}: {e.reason}", markup=False, highlight=False, soft_wrap=True)
    if q.count > 20:
        console.print(f"... and {q.count - 20} more")
    if strict and q.count:
        fail(f"--strict: {q.count} row(s) rejected", code=1)


@data_app.command("stats")
def stats_cmd(
    sources: list[Path] = typer.Argument(..., help="Record files (any importable format)."),
    tokenizer: str = typer.Option("smollm2-135m", help="Model spec whose tokenizer measures lengths; 'none' to skip."),
    reasoning_format: str = typer.Option(None, help="think, sections or plain (default: the preset's)."),
    max_length: int = typer.Option(512, help="Training max_length to compare against."),
    png: Path = typer.Option(None, help="Write a token-length histogram PNG here."),
    json_out: Path = typer.Option(None, "--json", help="Write the statistics as JSON here."),
) -> None:
    """Counts by source/task/subject and token-length percentiles of the rendered samples."""
    from ..data.pipeline import dataset_stats

    stats = _run(dataset_stats, sources, None if tokenizer == "none" else tokenizer, reasoning_format, max_length, png, json_out)
    table = Table("statistic", "value")
    for key in ("records", "multiple_choice", "with_reasoning", "with_context"):
        table.add_row(key, str(stats["counts"][key]))
    for key in ("by_source", "by_task"):
        table.add_row(key, ", ".join(f"{k} {v}" for k, v in stats["counts"][key].items()))
    for key, value in stats.get("tokens", {}).items():
        table.add_row(f"tokens {key}", str(value))
    console.print(table)
    if png:
        console.print(f"histogram -> {png}")


@data_app.command("split")
def split_cmd(
    sources: list[Path] = typer.Argument(..., help="Record files to split."),
    out: Path = typer.Option(..., "--out", help="Folder for train.jsonl, val.jsonl, test.jsonl, manifest.json."),
    val: float = typer.Option(0.05, help="Validation fraction."),
    test: float = typer.Option(0.0, help="Test fraction."),
    seed: int = typer.Option(0, help="Hash seed (changing it re-draws every split)."),
    stratify: str = typer.Option("source", help="Report strata by source, subject, task or none."),
    fmt: str = typer.Option("auto", "--format", help=FORMAT_HELP),
) -> None:
    """Deterministic hash-based splits: an item keeps its split when the data set grows."""
    from ..data.pipeline import split_file

    summary = _run(split_file, sources, out, val, test, seed, stratify, fmt)
    table = Table("stratum", "train", "val", "test", "val share", "test share")
    for name, s in summary["by_stratum"].items():
        table.add_row(name, str(s["train"]), str(s["val"]), str(s["test"]), f"{s['val_share']:.3f}", f"{s['test_share']:.3f}")
    console.print(table)


@data_app.command("mix")
def mix_cmd(
    specs: list[str] = typer.Argument(..., help="PATH[:weight=W][:cap=N][:format=F] per source."),
    out: Path = typer.Option(..., "--out", help="Folder for records.jsonl and manifest.json."),
    total: int = typer.Option(None, help="Total records; weights become shares of it."),
    seed: int = typer.Option(0, help="Seed for the deterministic sample and shuffle."),
) -> None:
    """Mix data sets with weights or caps; the manifest records files, sha256, counts and options."""
    from ..data.mix import parse_mix_spec
    from ..data.pipeline import mix_files

    sources = [_run(parse_mix_spec, s) for s in specs]
    summary = _run(mix_files, sources, out, total, seed)
    table = Table("source", "weight", "cap", "available", "taken")
    for e in summary["sources"]:
        table.add_row(Path(e["path"]).name, str(e["weight"]), str(e["cap"]), str(e["available"]), str(e["taken"]))
    console.print(table)
    console.print(f"{summary['written']} records -> {out / 'records.jsonl'}")


@data_app.command("contamination")
def contamination_cmd(
    train: list[Path] = typer.Argument(..., help="Training files to check."),
    against: list[Path] = typer.Option(..., "--against", help="Benchmark file(s), repeatable."),
    against_option: list[str] = typer.Option(None, "--against-option", help="Importer option KEY=VALUE for the benchmark files (applies to each --against file)."),
    n: int = typer.Option(13, help="Word n-gram length."),
    substring: int = typer.Option(64, help="Long-substring length in characters."),
    min_overlap: float = typer.Option(0.1, help="Share of a record's n-grams found in the benchmark that flags it."),
    drop: Path = typer.Option(None, "--drop", help="Write the records that are NOT flagged to this JSONL file."),
    report: Path = typer.Option(None, help="Write the full report (every flagged record) as JSON."),
) -> None:
    """Flag training records that overlap benchmark items (n-grams, long substrings, exact questions)."""
    from ..data.pipeline import check_contamination

    rep = _run(check_contamination, train, against, n=n, substring=substring, min_ngram_overlap=min_overlap,
               drop_to=drop, report_path=report, against_options=_options(against_option))
    console.print(f"checked {rep.checked}, flagged {rep.flagged} ({json.dumps(rep.by_signal)})")
    for hit in rep.hits[:10]:
        console.print(f"  {hit.record_id}: {'+'.join(hit.signals)} overlap={hit.ngram_overlap:.2f} -> {', '.join(hit.benchmark_ids[:2])}")
    if drop:
        console.print(f"{rep.checked - rep.flagged} clean records -> {drop}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
