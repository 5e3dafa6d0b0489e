"""Training data: read records through the importers, split off validation, render and audit.

Reading goes through ``medtune.data.importers.iter_records`` (any supported format; bad rows
go to ``RUN/quarantine.jsonl`` with file, line, field and reason, never silently lost) and
rendering through ``medtune.data.render.render_records`` (the inference rendering path plus
the mask audit, saved as ``RUN/render_report.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.load import ConfigError, ConfigProblem
from ..config.sections.data import DataSection
from ..data.records import Record
from ..data.render import RenderedExample, RenderReport, render_records
from ..data.split import assign_split
from ..utils.io import sha256_file

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".jsonl.gz", ".json.gz", ".csv.gz")


@dataclass
class TrainingData:
    train: list[RenderedExample]
    val: list[RenderedExample]
    reports: dict[str, RenderReport]
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256 (the data manifest)
    quarantined: int = 0


def _data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(DATA_SUFFIXES)
                  and not p.name.startswith(("quarantine", "manifest")))


def resolve_files(train_paths: list[str], val_paths: list[str]) -> tuple[list[Path], list[Path]]:
    """Files for training and validation; a folder with train.jsonl (+ val.jsonl) is a split."""
    train, val = [], [Path(p) for p in val_paths]
    for raw in train_paths:
        p = Path(raw)
        if p.is_dir() and (p / "train.jsonl").is_file():
            train.append(p / "train.jsonl")
            if not val_paths and (p / "val.jsonl").is_file():
                val.append(p / "val.jsonl")
        elif p.is_dir():
            train.extend(_data_files(p))
        else:
            train.append(p)
    missing = [str(p) for p in train + val if not p.is_file()]
    if missing or not train:
        raise ConfigError([ConfigProblem("data.train_files", f"no such data file(s): {missing}" if missing else "no training data given",
                                         "pass --data RECORDS (a JSONL file or a folder) or set data.train_files")], "data")
    return train, val


def read_records(files: list[Path], data: DataSection, quarantine_path: Path | None) -> tuple[list[Record], int]:
    """All valid records from ``files`` (first ``max_records`` only, if set) and the reject count."""
    from ..data.importers import iter_records
    from ..data.quality import Quarantine

    out: list[Record] = []
    with Quarantine(quarantine_path, keep_entries=False) as q:
        for f in files:
            for rec in iter_records(f, data.format, quarantine=q):
                out.append(rec)
                if data.max_records and len(out) >= data.max_records:
                    return out, q.count
    return out, q.count


def prepare_data(data: DataSection, tokenizer: Any, fmt: str, train_paths: list[str] | None = None,
                 run_dir: Path | None = None) -> TrainingData:
    """Records -> rendered, audited train/val examples plus the data manifest (sha256 per file)."""
    train_files, val_files = resolve_files(train_paths or data.train_files, data.val_files if not train_paths else [])
    quarantine = run_dir / "quarantine.jsonl" if run_dir else None
    records, rejected = read_records(train_files, data, quarantine)
    if val_files:
        val_records, more = read_records(val_files, data.model_copy(update={"max_records": None}), None)
        rejected += more
    else:
        # The one split of `medtune data split` (content hash + seed): duplicates share a side.
        sides = [assign_split(r, data.val_fraction, seed=data.split_seed) for r in records]
        val_records = [r for r, side in zip(records, sides) if side == "val"]
        records = [r for r, side in zip(records, sides) if side == "train"]
    opts = {"system_prompt": data.system_prompt, "loss_on": data.loss_on, "max_length": data.max_length,
            "truncation": data.truncation}
    train, train_report = render_records(tokenizer, records, fmt, **opts)
    val, val_report = render_records(tokenizer, val_records, fmt, **opts)
    if not train:
        raise ConfigError([ConfigProblem("data", f"no trainable samples: {train_report.summary()}",
                                         "raise data.max_length or check the records' answers")], "data")
    files = {str(f): sha256_file(f) for f in train_files + val_files}
    return TrainingData(train, val, {"train": train_report, "val": val_report}, files, rejected)
