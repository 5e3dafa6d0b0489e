"""Where records come from: one resolution for every stage that reads them (train, eval, data).

A records spec is one of

* a records file (``.jsonl``, ``.json``, ``.csv``, ``.tsv``, ``.parquet``, optionally ``.gz``)
  in any importer's format;
* a folder written by medtune -- ``medtune synth``, ``data import``, ``data split`` or
  ``data mix``: its ``manifest.json`` names the file(s) holding the records (key ``records``);
  folders written before that key are read by their known layout;
* a folder of record files without a manifest: every data file in it (each checked);
* a Hugging Face dataset, ``hf:ID[:CONFIG][@SPLIT][#REVISION]`` (``data/hf.py``).

Anything else (a missing path, an empty folder, a folder of unrelated files, a training run,
a binary file, a file whose rows match no importer or not the requested one) is a
:class:`DataError` naming the path and what was expected. Resolution reads a few rows of
each file, never a model: the trainer calls it before loading the base model.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "records.jsonl").write_text('{"Question": "Q?", "Complex_CoT": "c", "Response": "R."}\\n')
>>> src = resolve_records(str(d))
>>> src.kind, [pathlib.Path(f).name for f in src.files], src.format
('records', ['records.jsonl'], 'medical_o1')
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .hf import is_hf_spec, parse_hf_spec
from .importers import DataError, detect_format, get_importer, iter_records
from .importers.base import base_suffix, sniff_rows
from .manifest import MANIFEST_NAME
from .quality import Quarantine
from .records import Record

RECORD_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")
Kind = Literal["file", "hf", "records", "synth", "import", "split", "mix"]
KINDS = ("records", "synth", "import", "split", "mix")
Role = Literal["train", "eval"]
# Folders written before manifests named their records: where each kind kept them.
LEGACY_LAYOUT: dict[str, Any] = {"import": "records.jsonl", "mix": "records.jsonl", "synth": "records.jsonl",
                                 "split": {"train": "train.jsonl", "val": "val.jsonl", "test": "test.jsonl"}}
EXPECTED = ("a records file (.jsonl/.json/.csv/.tsv/.parquet, optionally .gz), a folder from `medtune synth`, "
            "`data import`, `data split` or `data mix` (its manifest.json names the records), or hf:ID[:CONFIG][@SPLIT]")


@dataclass(frozen=True)
class RecordsSource:
    """What to read for one records spec: the files (or ``hf:`` spec), the importer, where it came from."""

    spec: str
    kind: Kind
    files: tuple[str, ...]  # the records to train on (a split folder: its train part only)
    format: str = "auto"
    val_files: tuple[str, ...] = ()  # a split folder's val.jsonl: the trainer's validation set

    def describe(self) -> str:
        names = ", ".join(Path(f).name if not is_hf_spec(f) else f for f in self.files)
        where = "Hugging Face dataset" if self.kind == "hf" else f"{self.kind} folder" if self.kind != "file" else "file"
        return f"{self.spec} ({where}: {names}; format {self.format})"


def check_records_file(path: str | Path, fmt: str = "auto") -> str:
    """Check that ``path`` holds records an importer reads; return the importer name (detected for auto)."""
    if is_hf_spec(path):
        parse_hf_spec(path)
    else:
        p = Path(path)
        if p.is_dir():
            raise DataError(f"{p}: a folder where a records file was expected; expected {EXPECTED}")
        if not p.is_file():
            raise DataError(f"{p}: no such file; expected {EXPECTED}")
        if base_suffix(p) not in RECORD_SUFFIXES:
            raise DataError(f"{p}: not a records file (type {base_suffix(p) or 'without suffix'!r}); expected {EXPECTED}")
    rows = sniff_rows(path)
    if not rows:
        raise DataError(f"{path}: no parseable rows (binary, empty or not {base_suffix(Path(str(path))) or 'JSON'}); expected {EXPECTED}")
    if fmt == "auto":
        return detect_format(path)
    importer = get_importer(fmt)
    if not any(importer.matches(row) for row in rows):
        try:
            hint = f"; its rows look like format {detect_format(path)!r}"
        except DataError:
            hint = ""
        raise DataError(f"{path}: the rows do not match format {fmt!r} (fields {sorted(rows[0]) if isinstance(rows[0], dict) else rows[0]})"
                        f"{hint}: set data.format / --format to auto or the right importer")
    return fmt


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable manifest ({e}); expected {EXPECTED}") from e
    if not isinstance(manifest, dict):
        raise DataError(f"{path}: a manifest must be a JSON object; expected {EXPECTED}")
    return manifest


def _layout_without_manifest(folder: Path) -> tuple[str, Any]:
    """(kind, records) of a folder without manifest.json, from the files medtune writes."""
    if (folder / "records.jsonl").is_file():
        return ("synth" if (folder / "cases.jsonl").is_file() else "records"), "records.jsonl"
    if (folder / "train.jsonl").is_file():
        return "split", LEGACY_LAYOUT["split"]
    # A user's folder of record files (e.g. several downloaded sources): each must pass its own check.
    data_files = sorted(p.name for p in folder.iterdir() if p.is_file() and base_suffix(p) in RECORD_SUFFIXES
                        and not p.name.startswith((".", "quarantine")))
    if data_files:
        return "records", data_files
    names = sorted(p.name for p in folder.iterdir())[:6]
    held = f"it holds {', '.join(names)}{' ...' if len(names) == 6 else ''}" if names else "it is empty"
    raise DataError(f"{folder}: not a records folder ({held}); expected {EXPECTED}")


def _folder_records(folder: Path) -> tuple[str, Any]:
    manifest = _read_manifest(folder)
    if manifest is None:
        return _layout_without_manifest(folder)
    if manifest.get("records"):
        return str(manifest.get("kind", "records")), manifest["records"]
    kind = manifest.get("kind")
    if kind in LEGACY_LAYOUT:
        return kind, LEGACY_LAYOUT[kind]
    what = "a training run (RUN/manifest.json), not records" if "run_id" in manifest else f"a manifest of kind {kind!r} naming no records"
    raise DataError(f"{folder}: {what}; expected {EXPECTED}")


def _pick_split(folder: Path, records: dict[str, str], role: Role) -> tuple[list[str], list[str]]:
    """(files, val_files) of a split folder: train (+ val) for training; test, else val, for evaluation."""
    present = {k: str(folder / v) for k, v in records.items() if (folder / v).is_file()}
    if role == "eval":
        held_out = present.get("test") or present.get("val")
        if not held_out:
            raise DataError(f"{folder}: a split folder without test.jsonl or val.jsonl has nothing held out to evaluate on")
        return [held_out], []
    if "train" not in present:
        raise DataError(f"{folder}: split folder without its train file {records.get('train')!r}; re-run `medtune data split`")
    return [present["train"]], [present["val"]] if "val" in present else []


def resolve_records(spec: str | Path, fmt: str = "auto", *, role: Role = "train") -> RecordsSource:
    """Resolve and check one records spec (see the module docstring); reads a few rows, loads no model.

    ``role`` matters only for a split folder: ``train`` reads train.jsonl (val.jsonl becomes
    ``val_files``); ``eval`` reads test.jsonl, else val.jsonl.
    """
    text = str(spec)
    if is_hf_spec(text):
        return RecordsSource(text, "hf", (text,), check_records_file(text, fmt))
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; expected {EXPECTED}")
    if path.is_file():
        return RecordsSource(text, "file", (str(path),), check_records_file(path, fmt))
    kind, records = _folder_records(path)
    if isinstance(records, dict):
        files, val = _pick_split(path, records, role)
    else:
        names = [records] if isinstance(records, str) else list(records)
        files, val = [str(path / n) for n in names], []
    missing = [Path(f).name for f in files + val if not Path(f).is_file()]
    if missing:
        raise DataError(f"{path}: its manifest names {missing}, which {'is' if len(missing) == 1 else 'are'} missing; "
                        "re-run the command that wrote the folder")
    try:
        formats = {check_records_file(f, fmt) for f in files + val}
    except DataError as e:
        if _read_manifest(path) is not None or kind != "records":
            raise
        raise DataError(f"{path}: not a records folder: {e}") from None
    return RecordsSource(text, kind if kind in KINDS else "records", tuple(files),
                         formats.pop() if len(formats) == 1 else fmt, tuple(val))


def source_files(specs: list[str | Path], fmt: str = "auto", *, val: bool = False) -> list[str]:
    """The training files behind several specs, for commands that take sources (data import, split, stats, contamination).

    A split folder gives its train part, as the data stage reads it (``RecordsSource.files``): its val part
    is held out and stays out of training records. ``val=True`` adds the val files, for commands that only
    check files and write no records (data validate).
    """
    out: list[str] = []
    for spec in specs:
        src = resolve_records(spec, fmt)
        out.extend(src.files + src.val_files if val else src.files)
    return out


def iter_source_records(source: RecordsSource, *, quarantine: Quarantine | None = None,
                        val: bool = False, **options: Any) -> Iterator[Record]:
    """The records of a resolved source (its val files with ``val=True``), through the importers."""
    for f in source.val_files if val else source.files:
        yield from iter_records(f, source.format, quarantine=quarantine, **options)
