"""The data stage: import (and mix) the configured sources -> RUN/data/records.jsonl.

One source without weight or cap is imported as it is (its order kept). Several sources, or
any weight, cap or ``mix_total``, are imported one by one into RUN/data/sources/ and mixed
(``medtune data mix``: deterministic hash sample, every choice in the manifest). With a synth
stage, its records are the first source. Bad rows go to quarantine.jsonl with file, line,
field and reason, as with `medtune data import`.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...config.load import ConfigProblem
from ...config.schema import RunConfig
from ...config.sections.data import DataSection, DataSource
from ...data.importers import DataError
from ..registry import Context, Stage, register
from ..results import DataOutput, SynthOutput

RECORDS = "records.jsonl"


def records_source(spec: str) -> tuple[list[str], str | None]:
    """(the files or ``hf:`` spec to read, the format a medtune folder implies) for one source spec.

    The one call site to switch to ``medtune.data.contract.resolve_records`` (branch `contracts`:
    ``src = resolve_records(spec); return list(src.files), src.format``; it also reads ``hf:`` ids
    through `datasets`) once that is merged.
    """
    if spec.startswith("hf:"):
        return [spec], None
    path = Path(spec)
    if path.is_dir():
        for name in ("records.jsonl", "train.jsonl"):  # synth/import/mix folders; a split folder's train part
            if (path / name).is_file():
                return [str(path / name)], "medtune"
        raise DataError(f"{path}: a folder without records.jsonl or train.jsonl; expected a source file or a folder "
                        "written by `medtune synth` or `medtune data import|split|mix`")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return [spec], None


def _format(source: DataSource, implied: str | None) -> str:
    if implied and source.format not in ("auto", implied):
        raise DataError(f"{source.path}: a medtune folder holds medtune records; drop format={source.format!r} "
                        "(it names the importer of the original files)")
    return implied or source.format


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(text).stem if not text.startswith("hf:") else text[3:]).strip("-")[:40]


def import_sources(sources: list[DataSource], data: DataSection, out: str | Path, echo=print) -> DataOutput:
    """Import ``sources`` into ``out/records.jsonl`` (mixing them when asked); what `medtune data import -c` calls too."""
    from ...data.mix import MixSource
    from ...data.pipeline import import_files, mix_files

    if not sources:
        raise DataError("no data sources: set data.sources (files, medtune folders or hf: ids) or add synth to stages")
    out = Path(out)
    resolved = [(s, *records_source(s.path)) for s in sources]
    dedupe = {"dedupe": data.dedupe, "near_threshold": data.dedupe_threshold}
    if len(sources) == 1 and not sources[0].mixes and data.mix_total is None:
        src, paths, implied = resolved[0]
        summary = import_files(paths, out, _format(src, implied), **dedupe, **src.options)
        echo(f"{src.path}: {summary['accepted']} accepted, {summary['quarantined']} quarantined")
        return DataOutput(folder=out, records=out / RECORDS, count=summary["written"], quarantined=summary["quarantined"],
                          sources=[src.path])
    parts, quarantined = [], 0
    for i, (src, paths, implied) in enumerate(resolved):
        part = out / "sources" / f"{i:02d}-{_slug(src.path)}"
        summary = import_files(paths, part, _format(src, implied), **dedupe, **src.options)
        echo(f"{src.path}: {summary['accepted']} accepted, {summary['quarantined']} quarantined -> {part}")
        quarantined += summary["quarantined"]
        parts.append(MixSource(str(part / RECORDS), weight=src.weight, cap=src.cap, format="medtune"))
    mixed = mix_files(parts, out, total=data.mix_total, seed=data.split_seed)
    for entry, src in zip(mixed["sources"], sources):
        echo(f"mix: {src.path}: {entry['taken']} of {entry['available']}")
    return DataOutput(folder=out, records=out / RECORDS, count=mixed["written"], quarantined=quarantined,
                      sources=[s.path for s in sources])


def stage_sources(ctx_cfg: RunConfig, synth: SynthOutput | None) -> list[DataSource]:
    """The configured sources, after the synth stage's records when it runs."""
    first = [DataSource(path=str(synth.records), format="medtune")] if synth else []
    return first + list(ctx_cfg.data.sources)


def _run(ctx: Context, resume: bool) -> DataOutput:
    sources = stage_sources(ctx.cfg, ctx.get(SynthOutput))
    result = import_sources(sources, ctx.cfg.data, ctx.layout.folder("data"), echo=ctx.echo)
    ctx.echo(f"{result.count} records -> {result.records} ({result.quarantined} rows quarantined)")
    return result


def _inputs(ctx: Context) -> dict[str, Path | str]:
    out: dict[str, Path | str] = {}
    for i, src in enumerate(stage_sources(ctx.cfg, ctx.get(SynthOutput))):
        for j, path in enumerate(records_source(src.path)[0]):
            out[f"source {i}.{j} ({src.path})"] = path if path.startswith("hf:") else Path(path)
    return out


def _preflight(cfg: RunConfig) -> list[ConfigProblem]:
    from ...data.importers import get_importer

    probs = []
    if not cfg.data.sources and "synth" not in cfg.stages:
        probs.append(ConfigProblem("data.sources", "the data stage has nothing to import",
                                   "list source files, medtune folders or hf: ids in data.sources, or add synth to stages"))
    for i, src in enumerate(cfg.data.sources):
        try:
            _format(src, records_source(src.path)[1])
            if src.format != "auto":
                get_importer(src.format)
        except DataError as e:
            probs.append(ConfigProblem(f"data.sources.{i}", str(e), "fix the path or the format"))
    return probs


register(Stage("data", DataOutput, run=_run, inputs=_inputs, preflight=_preflight,
               reads=("data.sources", "data.mix_total", "data.dedupe", "data.dedupe_threshold", "data.split_seed")))
