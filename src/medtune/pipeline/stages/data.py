"""The data stage: import (and mix) the configured sources -> RUN/data/records.jsonl.

One source without weight or cap is imported as it is (its order kept). Several sources, or
any weight, cap or ``mix_total``, are imported one by one into RUN/data/sources/ and mixed
(``medtune data mix``: deterministic hash sample, every choice in the manifest). With a synth
stage, its records are the first source. Bad rows go to quarantine.jsonl with file, line,
field and reason, as with `medtune data import`. Then, before any training, ``data.contamination``
checks the records against the benchmarks (``data.contamination.default_index``: the packaged dev
vignettes, eval.benchmarks, the public benchmarks found under eval.data_root) and drops the
overlapping ones (default; report in contamination.json and the stage manifest) or stops the run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ...config.load import ConfigProblem
from ...config.schema import RunConfig
from ...config.sections.data import DataSection, DataSource
from ...data.contract import RecordsSource, resolve_records
from ...data.hf import is_hf_spec
from ...data.importers import DataError
from ..registry import Context, Stage, StageError, register
from ..results import ContaminationCheck, DataOutput, SynthOutput

RECORDS, CONTAMINATION = "records.jsonl", "contamination.json"


def resolve_source(source: DataSource) -> RecordsSource:
    """The records behind one configured source, through the data contract (``data.contract.resolve_records``).

    Files and ``hf:`` ids are read with the source's format (auto detects it). A folder medtune
    wrote (synth, data import|split|mix) holds medtune records whatever importer made them: that
    format is implied, and naming another importer is an error (it would misread them). A split
    folder gives its train part; its val part stays out of the training records.
    """
    if is_hf_spec(source.path) or not Path(source.path).expanduser().is_dir():
        return resolve_records(source.path, source.format)
    try:
        found = resolve_records(source.path)
    except DataError:
        if source.format == "auto":
            raise
        return resolve_records(source.path, source.format)  # a user's folder that only the named importer reads
    if found.format == "medtune" and source.format not in ("auto", "medtune"):
        raise DataError(f"{source.path}: a medtune folder holds medtune records; drop format={source.format!r} "
                        "(it names the importer of the original files)")
    return found if source.format in ("auto", found.format) else resolve_records(source.path, source.format)


def option_files(source: DataSource) -> dict[str, Path]:
    """The source's importer options whose values name existing files (PubMedQA's ``ids_file`` /
    ``exclude_ids_file``): inputs of the data stage as much as the source files, since they decide which rows are kept."""
    out: dict[str, Path] = {}
    for key, value in source.options.items():
        path = Path(value) if isinstance(value, str) and value and not is_hf_spec(value) else None
        if path is not None and path.is_file():
            out[key] = path
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(text).stem if not text.startswith("hf:") else text[3:]).strip("-")[:40]


def import_sources(sources: list[DataSource], data: DataSection, out: str | Path, echo=print) -> DataOutput:
    """Import ``sources`` into ``out/records.jsonl`` (mixing them when asked); what `medtune data import -c` calls too."""
    from ...data.mix import MixSource
    from ...data.pipeline import import_files, mix_files

    if not sources:
        raise DataError("no data sources: set data.sources (files, medtune folders or hf: ids) or add synth to stages")
    out = Path(out)
    resolved = [(s, resolve_source(s)) for s in sources]  # every source checked before anything is written
    dedupe = {"dedupe": data.dedupe, "near_threshold": data.dedupe_threshold}
    if len(sources) == 1 and not sources[0].mixes and data.mix_total is None:
        src, found = resolved[0]
        summary = import_files(list(found.files), out, found.format, **dedupe, **src.options)
        echo(f"{src.path}: {summary['accepted']} accepted, {summary['quarantined']} quarantined")
        return DataOutput(folder=out, records=out / RECORDS, count=summary["written"], quarantined=summary["quarantined"],
                          sources=[src.path])
    parts, quarantined = [], 0
    for i, (src, found) in enumerate(resolved):
        part = out / "sources" / f"{i:02d}-{_slug(src.path)}"
        summary = import_files(list(found.files), part, found.format, **dedupe, **src.options)
        echo(f"{src.path}: {summary['accepted']} accepted, {summary['quarantined']} quarantined -> {part}")
        quarantined += summary["quarantined"]
        parts.append(MixSource(str(part / RECORDS), weight=src.weight, cap=src.cap, format="medtune"))
    mixed = mix_files(parts, out, total=data.mix_total, seed=data.split_seed)
    for entry, src in zip(mixed["sources"], sources):
        echo(f"mix: {src.path}: {entry['taken']} of {entry['available']}")
    return DataOutput(folder=out, records=out / RECORDS, count=mixed["written"], quarantined=quarantined,
                      sources=[s.path for s in sources])


def contamination_benchmarks(cfg: RunConfig) -> list[str]:
    """What the data stage checks against: the default list (contamination.DEFAULT_BENCHMARKS) and eval.benchmarks."""
    from ...data.contamination import declared_benchmarks

    return declared_benchmarks(cfg.eval.benchmarks)


def screen_contamination(result: DataOutput, mode: str, benchmarks: list[str], data_root: str | None,
                         echo=print) -> DataOutput:
    """``data.contamination``: check the imported records against ``benchmarks`` (where readable); drop the
    overlapping ones (``drop``, report in OUT/contamination.json and the folder's manifest) or stop (``refuse``)."""
    from ...data.pipeline import check_contamination

    if mode == "off":
        return result
    path = result.folder / CONTAMINATION
    # drop: the kept records replace records.jsonl in the same pass (written to a temp file, renamed when complete)
    rep = check_contamination([result.records], data_root=data_root, benchmarks=benchmarks, report_path=path, fmt="medtune",
                              drop_to=result.records if mode == "drop" else None)
    if rep.flagged and mode == "refuse":
        hit = rep.hits[0]
        raise StageError(f"{rep.flagged} of {rep.checked} imported records overlap benchmark items (e.g. {hit.record_id} ~ "
                         f"{hit.benchmark_ids[0] if hit.benchmark_ids else '?'}, by {'+'.join(hit.signals)}); see {path}. "
                         "Remove them from the sources, or set data.contamination=drop to leave them out")
    kept = rep.checked - rep.flagged
    check = ContaminationCheck(mode=mode, checked=rep.checked, flagged=rep.flagged, dropped=rep.flagged if mode == "drop" else 0,
                               benchmarks=rep.benchmarks, not_checked=rep.not_checked, report=path)
    if rep.flagged:
        _note_in_manifest(result, check, kept)
    echo(check.line())
    for name, why in rep.not_checked.items():
        echo(f"contamination: not checked against {name}: {why}")
    return result.model_copy(update={"count": kept, "contamination": check})


def _note_in_manifest(result: DataOutput, check: ContaminationCheck, kept: int) -> None:
    """The data folder's manifest.json: the records file as it now is, and what the check left out."""
    from ...data.manifest import MANIFEST_NAME, file_entry, write_manifest

    manifest = json.loads((result.folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    manifest["outputs"] = [file_entry(result.records, records=kept) if Path(o["path"]) == result.records else o
                           for o in manifest.get("outputs", [])]
    manifest["contamination"] = {**check.model_dump(mode="json", exclude={"report"}), "report": CONTAMINATION}
    write_manifest(result.folder, manifest)


def stage_sources(ctx_cfg: RunConfig, synth: SynthOutput | None) -> list[DataSource]:
    """The configured sources, after the synth stage's records when it runs."""
    first = [DataSource(path=str(synth.records), format="medtune")] if synth else []
    return first + list(ctx_cfg.data.sources)


def run_data_stage(cfg: RunConfig, sources: list[DataSource], out: str | Path, echo=print) -> DataOutput:
    """Import ``sources`` into ``out``, then the contamination check: the data stage (`medtune data import -c` too)."""
    result = import_sources(sources, cfg.data, out, echo=echo)
    return screen_contamination(result, cfg.data.contamination, contamination_benchmarks(cfg), cfg.eval.data_root, echo)


def _run(ctx: Context, resume: bool) -> DataOutput:
    result = run_data_stage(ctx.cfg, stage_sources(ctx.cfg, ctx.get(SynthOutput)), ctx.layout.folder("data"), echo=ctx.echo)
    ctx.echo(f"{result.count} records -> {result.records} ({result.quarantined} rows quarantined)")
    return result


def _inputs(ctx: Context) -> dict[str, Path | str]:
    from ...data.contamination import benchmark_files

    out: dict[str, Path | str] = {}
    for i, src in enumerate(stage_sources(ctx.cfg, ctx.get(SynthOutput))):
        for j, path in enumerate(resolve_source(src).files):
            out[f"source {i}.{j} ({src.path})"] = path if is_hf_spec(path) else Path(path)
        for key, path in option_files(src).items():  # e.g. PubMedQA's exclude_ids_file: what it holds decides the records
            out[f"source {i} option {key} ({src.options[key]})"] = path
    if ctx.cfg.data.contamination != "off":  # a benchmark that appears (data root, eval.benchmarks) checks again
        for name, files in benchmark_files(ctx.cfg.eval.data_root, contamination_benchmarks(ctx.cfg)).items():
            out.update({f"contamination benchmark {name} file {j}": f if is_hf_spec(f) else Path(f) for j, f in enumerate(files)})
    return out


def _preflight(cfg: RunConfig) -> list[ConfigProblem]:
    from ...data.importers import get_importer

    probs = []
    if not cfg.data.sources and "synth" not in cfg.stages:
        probs.append(ConfigProblem("data.sources", "the data stage has nothing to import",
                                   "list source files, medtune folders or hf: ids in data.sources, or add synth to stages"))
    for i, src in enumerate(cfg.data.sources):
        try:
            if src.format != "auto":
                get_importer(src.format)
            resolve_source(src)
        except DataError as e:
            probs.append(ConfigProblem(f"data.sources.{i}", str(e), "fix the path or the format"))
    return probs


register(Stage("data", DataOutput, run=_run, inputs=_inputs, preflight=_preflight,
               reads=("data.sources", "data.mix_total", "data.dedupe", "data.dedupe_threshold", "data.split_seed",
                      "data.contamination")))
