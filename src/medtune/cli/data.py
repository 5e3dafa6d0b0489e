"""`medtune data import|validate|stats|split|mix|contamination|dedupe`: thin wrappers over medtune.data.

Other modules may add commands to ``data_app`` (e.g. ``preview`` from cli/data_preview.py).
Exit codes: 0 ok, 1 ``--strict`` found rejected rows, 2 bad input file or option.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from .common import console, fail, user_errors
from .options import command_config, config_option, field_option, or_default, split_args

data_app = typer.Typer(
    help="Import, validate, dedupe, check contamination, split, mix and inspect training data.",
    no_args_is_help=True,
)



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
    args: list[str] = typer.Argument(None, help="Source files (JSON, JSONL, CSV, Parquet, .gz), then dotted overrides; "
                                     "without files: the data.sources of -c CONFIG, imported as `medtune run` does."),
    config: Path = config_option(),
    out: Path = typer.Option(None, "--out", help="Output folder: records.jsonl, quarantine.jsonl, manifest.json "
                             "(with -c: RUN_DIR/data)."),
    fmt: str = field_option("data.sources.format", "--format", apply=False),
    option: list[str] = field_option("data.sources.options", "--option", apply=False, hint=" Repeat as KEY=VALUE."),
    dedupe: bool = field_option("data.dedupe", "--dedupe/--no-dedupe"),
    near_threshold: float = field_option("data.dedupe_threshold", "--near-threshold"),
    reject_duplicate_options: bool = typer.Option(False, help="Quarantine MCQs with two identical options (default: flag)."),
    strict: bool = typer.Option(False, help="Exit 1 if any row was quarantined."),
) -> None:
    """Import source files into medtune records, quarantining every bad row with its line and reason."""
    from ..data.pipeline import import_files
    from ..pipeline import RunLayout
    from ..pipeline.stages.data import run_data_stage

    files, overrides = split_args(args)
    opts = _options(option) | ({"duplicate_options": "reject"} if reject_duplicate_options else {})
    with user_errors():
        cfg = command_config(import_cmd, config, overrides, locals())
        out = out or (RunLayout.of(cfg).folder("data") if config else None)
        if out is None:
            fail("give --out DIR (or -c CONFIG)")
        if not files:
            given = [flag for flag, value in (("--format", fmt), ("--option", option),
                                              ("--reject-duplicate-options", reject_duplicate_options)) if value]
            if given:
                fail(f"{', '.join(given)} set{'s' if len(given) == 1 else ''} how the files named on the command line "
                     "are read; without files, -c imports the config's data.sources, each with its own format and "
                     "options (data.sources[].format, data.sources[].options, e.g. {duplicate_options: reject}): "
                     "set them there, or name the files")
            result = run_data_stage(cfg, cfg.data.sources, out, echo=console.print)
            console.print(f"{result.count} records -> {result.records}; {result.quarantined} quarantined")
            quarantined = result.quarantined
        else:
            summary = import_files(files, out, or_default(fmt, "data.sources.format"), dedupe=cfg.data.dedupe, near_threshold=cfg.data.dedupe_threshold,
                                   **opts)
            _print_import(summary, out, cfg.data.dedupe)
            quarantined = summary["quarantined"]
    if strict and quarantined:
        fail(f"--strict: {quarantined} row(s) rejected; see {out / 'quarantine.jsonl'}", code=1)


def _print_import(summary: dict, out: Path, dedupe: bool) -> None:
    console.print(_files_table(summary["files"]))
    if dedupe:
        d = summary["dedupe"]
        console.print(f"dedupe: {d['exact_removed']} exact and {d['near_removed']} near duplicates removed "
                      f"({d['conflicting_answers']} with a different answer); clusters in {out / 'dedupe.json'}")
    console.print(f"{summary['written']} records -> {out / 'records.jsonl'}; "
                  f"{summary['quarantined']} quarantined -> {out / 'quarantine.jsonl'}")


@data_app.command("validate")
def validate_cmd(
    sources: list[Path] = typer.Argument(..., help="Files to check."),
    fmt: str = field_option("data.sources.format", "--format", apply=False),
    option: list[str] = field_option("data.sources.options", "--option", apply=False, hint=" Repeat as KEY=VALUE."),
    quarantine: Path = typer.Option(None, help="Also write every rejected row to this JSONL file."),
    strict: bool = typer.Option(False, help="Exit 1 if any row is rejected."),
) -> None:
    """Check files and list rejected rows (file:line field: reason) without writing records."""
    from ..data.pipeline import validate_files

    files, q = _run(validate_files, sources, or_default(fmt, "data.sources.format"), quarantine, **_options(option))
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
    max_length: int = field_option("data.max_length", "--max-length", apply=False),
    png: Path = typer.Option(None, help="Write a token-length histogram PNG here."),
    json_out: Path = typer.Option(None, "--json", help="Write the statistics as JSON here."),
) -> None:
    """Counts by source/task/subject and token-length percentiles of the rendered samples."""
    from ..data.pipeline import dataset_stats

    stats = _run(dataset_stats, sources, None if tokenizer == "none" else tokenizer, reasoning_format,
                 or_default(max_length, "data.max_length"), png, json_out)
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
    seed: int = field_option("data.split_seed", "--seed", apply=False),
    stratify: str = typer.Option("source", help="Report strata by source, subject, task or none."),
    fmt: str = field_option("data.sources.format", "--format", apply=False),
) -> None:
    """Deterministic hash-based splits: an item keeps its split when the data set grows."""
    from ..data.pipeline import split_file

    summary = _run(split_file, sources, out, val, test, or_default(seed, "data.split_seed"), stratify,
                   or_default(fmt, "data.sources.format"))
    table = Table("stratum", "train", "val", "test", "val share", "test share")
    for name, s in summary["by_stratum"].items():
        table.add_row(name, str(s["train"]), str(s["val"]), str(s["test"]), f"{s['val_share']:.3f}", f"{s['test_share']:.3f}")
    console.print(table)
    _print_quarantined(summary["quarantined"], out / "quarantine.jsonl")


def _print_quarantined(count: int, path: Path) -> None:
    """The one line naming the quarantine file of a command that writes records (0 is said too)."""
    console.print(f"{count} row(s) quarantined (file, line, field, reason) -> {path}", markup=False, highlight=False,
                  soft_wrap=True)


@data_app.command("mix")
def mix_cmd(
    specs: list[str] = typer.Argument(..., help="PATH[:weight=W][:cap=N][:format=F] per source."),
    out: Path = typer.Option(..., "--out", help="Folder for records.jsonl and manifest.json."),
    total: int = field_option("data.mix_total", "--total", apply=False),
    seed: int = field_option("data.split_seed", "--seed", apply=False),
) -> None:
    """Mix data sets with weights or caps; the manifest records files, sha256, counts and options."""
    from ..data.importers import DataError
    from ..data.mix import check_total, parse_mix_spec
    from ..data.pipeline import mix_files

    try:
        check_total(total)  # by the field data.mix_total itself, as -c would
    except DataError as e:
        fail(f"--total: {e}")
    sources = [_run(parse_mix_spec, s) for s in specs]
    summary = _run(mix_files, sources, out, total, or_default(seed, "data.split_seed"))
    table = Table("source", "weight", "cap", "available", "quarantined", "taken")
    for e in summary["sources"]:
        table.add_row(Path(e["path"]).name, str(e["weight"]), str(e["cap"]), str(e["available"]), str(e["quarantined"]),
                      str(e["taken"]))
    console.print(table)
    console.print(f"{summary['written']} records -> {out / 'records.jsonl'}")
    _print_quarantined(summary["quarantined"], out / "quarantine.jsonl")


@data_app.command("contamination")
def contamination_cmd(
    train: list[Path] = typer.Argument(..., help="Training records to check (files or medtune folders)."),
    against: list[Path] = typer.Option(None, "--against", help="Benchmark file(s), repeatable; default: the declared "
                                       "benchmarks (the packaged dev vignettes, and those found under the data root)."),
    data_root: Path = field_option("eval.data_root", "--data-root", apply=False),
    against_option: list[str] = typer.Option(None, "--against-option", help="Importer option KEY=VALUE for the benchmark files (applies to each --against file)."),
    n: int = typer.Option(13, help="Word n-gram length."),
    substring: int = typer.Option(64, help="Long-substring length in characters."),
    min_overlap: float = typer.Option(0.1, help="Share of a record's n-grams found in the benchmark that flags it."),
    drop: Path = typer.Option(None, "--drop", help="Write the records that are NOT flagged to this JSONL file "
                              "(rows that cannot be read go to DROP.quarantine.jsonl)."),
    report: Path = typer.Option(None, help="Write the full report (every flagged record) as JSON."),
) -> None:
    """Flag training records that overlap benchmark items (n-grams, long substrings, exact questions).

    Training rows that cannot be read are quarantined with file, line and reason (beside --drop, else
    beside --report, else listed here); a benchmark row that cannot be read stops the check (exit 2).
    """
    from ..data.contract import source_files
    from ..data.importers import Quarantine
    from ..data.pipeline import check_contamination, refuse_overwriting
    from .options import env_data_root

    near = drop if drop is not None else report
    qpath = near.with_suffix(".quarantine.jsonl") if near is not None else None
    outputs = {k: v for k, v in (("--drop", drop), ("--report", report), ("quarantine file", qpath)) if v is not None}
    _run(lambda: refuse_overwriting(outputs, [*source_files(train), *(against or [])]))
    quarantine = Quarantine(qpath, keep_entries=qpath is None)
    with quarantine:
        rep = _run(check_contamination, train, against, n=n, substring=substring, min_ngram_overlap=min_overlap,
                   drop_to=drop, report_path=report, against_options=_options(against_option),
                   data_root=data_root or env_data_root(), quarantine=quarantine)
    console.print("against " + ", ".join(f"{Path(b).name} ({k} items)" for b, k in rep.benchmarks.items()))
    for name, why in rep.not_checked.items():
        console.print(f"not checked: {name}: {why}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"checked {rep.checked}, flagged {rep.flagged} ({json.dumps(rep.by_signal)})")
    for hit in rep.hits[:10]:
        console.print(f"  {hit.record_id}: {'+'.join(hit.signals)} overlap={hit.ngram_overlap:.2f} -> {', '.join(hit.benchmark_ids[:2])}")
    if drop:
        console.print(f"{rep.checked - rep.flagged} clean records -> {drop}")
    if qpath is not None:
        _print_quarantined(quarantine.count, qpath)
    elif quarantine.count:
        console.print(f"{quarantine.count} row(s) could not be read and were not checked:", markup=False)
        for e in quarantine.entries[:10]:
            console.print(f"  {e.file}:{e.line} {e.field}: {e.reason}", markup=False, highlight=False, soft_wrap=True)
        if quarantine.count > 10:
            console.print(f"  ... and {quarantine.count - 10} more (give --drop or --report to keep them all in a file)")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
