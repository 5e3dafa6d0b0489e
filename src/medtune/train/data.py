"""Training data: resolve the sources, read records through the importers, split off validation, render and audit.

Sources are resolved by the data contract (``medtune.data.contract``: a records file, a synth /
import / split / mix folder, or ``hf:ID``); reading goes through the importers (any supported
format; bad rows go to ``RUN/quarantine.jsonl`` with file, line, field and reason, never silently
lost). Both happen in :func:`load_training_records`, before the trainer loads a model, so bad data
fails in seconds. Rendering (:func:`render_training_data`) goes through
``medtune.data.render.render_records`` (the inference rendering path plus the mask audit, saved
as ``RUN/render_report.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.load import ConfigError, ConfigProblem
from ..config.sections.data import DataSection
from ..data.contract import RecordsSource, iter_source_records, resolve_records
from ..data.importers import DataError
from ..data.quality import Quarantine
from ..data.records import Record
from ..data.render import RenderedExample, RenderReport, render_records
from ..data.split import assign_split, split_key, split_position
from ..utils.io import sha256_file


@dataclass
class TrainingData:
    train: list[RenderedExample]
    val: list[RenderedExample]
    reports: dict[str, RenderReport]
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256 (the data manifest)
    quarantined: int = 0


@dataclass
class TrainingRecords:
    """The records a run trains on, read and split before any model is loaded."""

    train: list[Record]
    val: list[Record]
    sources: list[RecordsSource]
    quarantined: int = 0

    def files(self) -> dict[str, str]:
        """Every file read -> its sha256 (an hf: source -> the dataset's fingerprint)."""
        from ..data.hf import dataset_fingerprint, is_hf_spec

        paths = [f for s in self.sources for f in s.files]
        return {f: dataset_fingerprint(f) if is_hf_spec(f) else sha256_file(f) for f in paths}


def _data_problem(e: DataError) -> ConfigError:
    return ConfigError([ConfigProblem("data.train_files", str(e), "pass --data RECORDS (see docs/data-formats.md)")], "data")


def resolve_sources(train_paths: list[str], val_paths: list[str], fmt: str = "auto") -> tuple[list[RecordsSource], list[RecordsSource]]:
    """Training and validation sources, checked by the data contract (``data.contract``); reads no model.

    A split folder's val.jsonl becomes validation data unless validation files are given.
    """
    if not train_paths:
        raise ConfigError([ConfigProblem("data.train_files", "no training data given",
                                         "pass --data RECORDS (a file, a medtune data folder or hf:ID) or set data.train_files")], "data")
    try:
        train = [resolve_records(p, fmt) for p in train_paths]
        val = [resolve_records(p, fmt) for p in val_paths]
    except DataError as e:
        raise _data_problem(e) from None
    if not val_paths:
        val = [RecordsSource(s.spec, s.kind, s.val_files, s.format) for s in train if s.val_files]
    return train, val


def read_records(sources: list[RecordsSource], data: DataSection, quarantine: Quarantine) -> list[Record]:
    """All valid records of ``sources`` (first ``max_records`` only, if set); rejects go to ``quarantine``."""
    out: list[Record] = []
    for source in sources:
        for rec in iter_source_records(source, quarantine=quarantine):
            out.append(rec)
            if data.max_records and len(out) >= data.max_records:
                return out
    return out


def load_training_records(data: DataSection, train_paths: list[str] | None = None,
                          run_dir: Path | None = None) -> TrainingRecords:
    """Resolve, read and split the training data; a problem here is raised before any model loads."""
    train_sources, val_sources = resolve_sources(train_paths or data.train_files,
                                                 data.val_files if not train_paths else [], data.format)
    with Quarantine(run_dir / "quarantine.jsonl" if run_dir else None, keep_entries=False) as q:
        try:
            records = read_records(train_sources, data, q)
            val_records = read_records(val_sources, data.model_copy(update={"max_records": None}), q)
        except DataError as e:
            raise _data_problem(e) from None
    if not records:
        where = f"; see {run_dir / 'quarantine.jsonl'}" if run_dir else ""
        reasons = ", ".join(f"{k} ({v})" for k, v in q.by_reason.most_common(3)) or "none"
        raise ConfigError([ConfigProblem("data.train_files", f"no valid training records in {', '.join(s.spec for s in train_sources)}: "
                                         f"{q.count} rejected (top reasons: {reasons}){where}",
                                         "check data.format (auto detects it) and the source fields")], "data")
    if not val_sources:
        # The one split of `medtune data split` (case or content hash + seed): duplicates and a case's records share a side.
        sides = [assign_split(r, data.val_fraction, seed=data.split_seed) for r in records]
        if data.val_fraction > 0 and "val" not in sides:  # a small set drew no validation: its lowest draw is held out,
            keys = [split_key(r) for r in records]        # so eval loss is still measured (whole case, as the draw keys)
            first = min(set(keys), key=lambda k: split_position(records[keys.index(k)], data.split_seed))
            sides = ["val" if k == first and len(set(keys)) > 1 else side for k, side in zip(keys, sides)]
        val_records = [r for r, side in zip(records, sides) if side == "val"]
        records = [r for r, side in zip(records, sides) if side == "train"]
    return TrainingRecords(records, val_records, train_sources + val_sources, q.count)


def render_training_data(records: TrainingRecords, data: DataSection, tokenizer: Any, fmt: str) -> TrainingData:
    """Rendered, audited train/val examples plus the data manifest (sha256 per file)."""
    opts = {"system_prompt": data.system_prompt, "loss_on": data.loss_on, "max_length": data.max_length,
            "truncation": data.truncation}
    train, train_report = render_records(tokenizer, records.train, fmt, **opts)
    val, val_report = render_records(tokenizer, records.val, fmt, **opts)
    if not train:
        raise ConfigError([ConfigProblem("data", f"no trainable samples: {train_report.summary()}",
                                         "raise data.max_length or check the records' answers")], "data")
    return TrainingData(train, val, {"train": train_report, "val": val_report}, records.files(), records.quarantined)


def prepare_data(data: DataSection, tokenizer: Any, fmt: str, train_paths: list[str] | None = None,
                 run_dir: Path | None = None) -> TrainingData:
    """Records -> rendered, audited train/val examples (``load_training_records`` + ``render_training_data``)."""
    return render_training_data(load_training_records(data, train_paths, run_dir), data, tokenizer, fmt)
