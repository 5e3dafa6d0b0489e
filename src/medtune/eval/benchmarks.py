"""Benchmarks declared as data: one YAML per benchmark in ``resources/benchmarks``.

Each declaration says where the file lies (relative to a data root the user passes:
``--data-root`` / ``eval.data_root``, else ``utils.paths.benchmark_data_root()``:
``$MEDTUNE_DATA_ROOT``, or ``../shared/data`` beside a source checkout; or, with
``packaged: true``, relative to ``resources/benchmarks`` for a file that ships with medtune), which
importer reads it (``medtune.data.importers``), and, for the ``loglik`` protocol, the
lm-evaluation-harness prompt and choice continuation as Jinja templates, so our numbers
can be set beside the harness's. Any records file, medtune data folder or ``hf:ID`` dataset
(``medtune.data.contract``) is a benchmark too: pass it instead of a name.

>>> sorted(load_benchmarks())
['dev_vignettes', 'medmcqa', 'medqa', 'mmlu_medical', 'pubmedqa']
>>> spec = get_benchmark("medqa")
>>> from medtune.data.records import Record, Answer
>>> r = Record.create(source="t", task="mcq", question="Q?", options={"A": "x", "B": "y"}, answer=Answer(letter="B"))
>>> ctx, conts = loglik_request(spec, r)
>>> print(ctx)
Question: Q?
A. x
B. y
Answer:
>>> conts
[' A', ' B']
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..data.hf import is_hf_spec
from ..data.records import Record
from ..utils.paths import benchmark_data_root, resource_path

# Generic harness-style MCQ prompt for record files that declare nothing else.
GENERIC_TEMPLATE = "Question: {{ question }}\n{% for k, v in options.items() %}{{ k }}. {{ v }}\n{% endfor %}Answer:"


class BenchmarkError(ValueError):
    """A benchmark that cannot be found, declared wrongly, or whose file is missing."""


class LoglikSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    style: Literal["harness", "chat"] = Field(
        "harness", description="harness = the template below (comparable with lm-evaluation-harness); chat = the model's "
        "chat prompt + empty reasoning + 'The answer is (' scored over the option letters, i.e. the format medtune trains on.")
    harness_task: str | None = Field(None, description="The lm-evaluation-harness task these prompts reproduce.")
    template: str = Field(GENERIC_TEMPLATE, description="Jinja template of the context (record fields as variables).")
    choice: str = Field(" {{ letter }}", description="Jinja template of one choice's continuation (letter, text).")


class BenchmarkSpec(BaseModel):
    """One benchmark declaration (the YAML file's content)."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = Field(1, description="Declaration format version.")
    name: str = Field(description="Name used on the command line.")
    description: str = Field("", description="One line for `medtune eval list`.")
    files: str = Field(description="File path or glob, relative to the data root (absolute paths allowed), or to "
                       "resources/benchmarks when `packaged` is true.")
    packaged: bool = Field(False, description="The file ships inside medtune (resources/benchmarks), so no data root is needed.")
    importer: str = Field("auto", description="medtune.data.importers format name.")
    importer_options: dict[str, Any] = Field(default_factory=dict, description="Extra importer options; *_file values are data-root relative.")
    expected_items: int | None = Field(None, description="Item count of the full benchmark (a check against wrong files).")
    chance: float | None = Field(None, description="Accuracy of uniform random guessing.")
    subject_field: str | None = Field(None, description="metadata key that holds the subject/specialty for per-subject accuracy.")
    provenance: str = Field("", description="Paper / origin / licence of the data.")
    loglik: LoglikSpec = Field(default_factory=LoglikSpec, description="Prompt and choices for the loglik protocol.")


@lru_cache(maxsize=1)
def load_benchmarks() -> dict[str, BenchmarkSpec]:
    """Every shipped declaration, validated; a broken one is an error naming its file."""
    out = {}
    for path in sorted(resource_path("benchmarks").glob("*.yaml")):
        spec = load_benchmark_file(path)
        out[spec.name] = spec
    return out


def load_benchmark_file(path: str | Path) -> BenchmarkSpec:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = BenchmarkSpec.model_validate(raw)
        _env().from_string(spec.loglik.template)
        _env().from_string(spec.loglik.choice)
    except (yaml.YAMLError, ValidationError, jinja2.TemplateError) as e:
        raise BenchmarkError(f"{path}: invalid benchmark declaration: {e}") from e
    if spec.name != path.stem:
        raise BenchmarkError(f"{path}: field name={spec.name!r} must equal the file name {path.stem!r}")
    return spec


def get_benchmark(name_or_path: str) -> BenchmarkSpec:
    """A shipped benchmark by name, a declaration YAML, or a record file (JSONL/JSON/CSV) as-is."""
    known = load_benchmarks()
    if name_or_path in known:
        return known[name_or_path]
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return load_benchmark_file(path)
    if path.exists() or is_hf_spec(name_or_path):
        return _records_benchmark(name_or_path)
    raise BenchmarkError(f"unknown benchmark {name_or_path!r}: use one of {sorted(known)}, a record file, "
                         "a medtune data folder or hf:ID[:CONFIG][@SPLIT]")


def _records_benchmark(spec: str) -> BenchmarkSpec:
    """A record file, a medtune data folder (a split folder's test.jsonl, else val.jsonl) or an hf: dataset, as a benchmark."""
    from ..data.contract import resolve_records
    from ..data.importers import DataError

    try:
        source = resolve_records(spec, role="eval")
    except DataError as e:
        raise BenchmarkError(str(e)) from None
    if len(source.files) != 1:
        raise BenchmarkError(f"{spec}: holds {len(source.files)} record files; pass one of them")
    (target,) = source.files
    name = _hf_name(spec) if source.kind == "hf" else Path(spec).name if source.kind != "file" else Path(spec).stem
    return BenchmarkSpec(name=name, files=target if source.kind == "hf" else str(Path(target).resolve()),
                         importer=source.format, description=f"records {source.describe()}", loglik=LoglikSpec(style="chat"))


def _hf_name(spec: str) -> str:
    """A folder-safe benchmark name for an hf: spec: the dataset name, its config and split."""
    from ..data.hf import parse_hf_spec

    parsed = parse_hf_spec(spec)
    parts = [Path(parsed.path).name, parsed.config, parsed.split]
    return "_".join(re.sub(r"[^A-Za-z0-9._-]+", "-", p).strip("-") for p in parts if p)


def resolve_files(spec: BenchmarkSpec, data_root: str | Path | None) -> list[Path | str]:
    """The benchmark's files (an ``hf:`` spec stands for itself)."""
    if is_hf_spec(spec.files):
        return [spec.files]
    pattern = Path(spec.files)
    if spec.packaged and not pattern.is_absolute():
        pattern = resource_path("benchmarks") / pattern
    elif not pattern.is_absolute():
        data_root = data_root if data_root is not None else benchmark_data_root()
        if data_root is None:
            raise BenchmarkError(f"benchmark {spec.name!r} needs a data root: pass --data-root DIR or set MEDTUNE_DATA_ROOT (it reads {spec.files})")
        pattern = Path(data_root) / pattern
    files = sorted(Path(p) for p in glob.glob(str(pattern)))
    if not files:
        raise BenchmarkError(f"benchmark {spec.name!r}: no file matches {pattern} (check --data-root / MEDTUNE_DATA_ROOT)")
    return files


def iter_benchmark_records(
    spec: BenchmarkSpec, data_root: str | Path | None = None, *, limit: int | None = None, quarantine: str | Path | None = None
) -> Iterator[Record]:
    """The benchmark's records through the data importers (ids as the importers assign them)."""
    for _, record in _records_with_files(spec, data_root, limit=limit, quarantine=quarantine):
        yield record


def _records_with_files(
    spec: BenchmarkSpec, data_root: str | Path | None, *, limit: int | None = None, quarantine: str | Path | None = None
) -> Iterator[tuple[Path | str, Record]]:
    """(file, record) for each of the benchmark's records, so a problem found later can name its file."""
    from ..data.importers import iter_records

    data_root = data_root if data_root is not None else benchmark_data_root()
    options = dict(spec.importer_options)
    for key, value in options.items():
        if key.endswith("_file") and isinstance(value, str) and not Path(value).is_absolute():
            options[key] = str(Path(data_root or ".") / value)
    n = 0
    for path in resolve_files(spec, data_root):
        for record in iter_records(path, spec.importer, quarantine=quarantine, **options):
            if limit is not None and n >= limit:
                return
            n += 1
            yield path, record


def load_benchmark_records(spec: BenchmarkSpec, data_root: str | Path | None = None, *, limit: int | None = None) -> list[Record]:
    """The benchmark's records, checked: at least one, the declared count, and every id once.

    Evaluation resumes, pairs (compare) and scores items by id, so two items sharing an id
    would silently become one there; whatever importer made the ids, that is refused here.
    """
    records: list[Record] = []
    first_file: dict[str, Path | str] = {}
    for path, record in _records_with_files(spec, data_root, limit=limit):
        if record.id in first_file:
            raise BenchmarkError(_duplicate_id_message(spec, record.id, first_file[record.id], path))
        first_file[record.id] = path
        records.append(record)
    if not records:
        raise BenchmarkError(f"benchmark {spec.name!r}: the importer produced no records from {spec.files}")
    if limit is None and spec.expected_items and len(records) != spec.expected_items:
        raise BenchmarkError(f"benchmark {spec.name!r}: expected {spec.expected_items} items, the file gave {len(records)}; is it the right split?")
    return records


def _duplicate_id_message(spec: BenchmarkSpec, item_id: str, first: Path | str, again: Path | str) -> str:
    where = f"twice in {first}" if first == again else f"in {first} and again in {again}"
    return (f"benchmark {spec.name!r}: item id {item_id!r} occurs {where}; every item needs its own id (results are "
            f"resumed, paired and scored by id, so the two items would silently count as one). Fix the ids the "
            f"importer ({spec.importer}) gives, or the file.")


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False)


@lru_cache(maxsize=64)
def _template(source: str) -> jinja2.Template:
    return _env().from_string(source)


def loglik_request(spec: BenchmarkSpec, record: Record) -> tuple[str, list[str]]:
    """(context, one continuation per option in the record's option order)."""
    if not record.options:
        raise BenchmarkError(f"{spec.name}: item {record.id} has no options; the loglik protocol needs multiple choice")
    fields = record.model_dump()
    context = _template(spec.loglik.template).render(**fields)
    choice = _template(spec.loglik.choice)
    return context, [choice.render(letter=k, text=v) for k, v in record.options.items()]
