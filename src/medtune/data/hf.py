"""Hugging Face datasets as record sources, wherever a source file is accepted.

Syntax: ``hf:ID[:CONFIG][@SPLIT][#REVISION]``

* ``ID`` is a Hub dataset id (``owner/name``) or a local folder: one written by
  ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, or a clone of a dataset repository;
* ``CONFIG`` is the dataset's configuration (subset), e.g. ``en`` for medical-o1-reasoning-SFT;
* ``SPLIT`` defaults to ``train`` and takes the ``datasets`` slice syntax (``train[:500]``);
* ``REVISION`` pins a Hub branch, tag or commit.

Rows go through the same importers as files do (``medical_o1``, ``reasonmed``, ...), so
``medtune data import hf:FreedomIntelligence/medical-o1-reasoning-SFT:en --out D`` and a
downloaded JSON of the same data give the same records.

Loading follows ``models/source.py``: the local Hugging Face cache first (no network), then
the Hub when it can be reached; offline and not cached is a :class:`DataError` saying what to do.

>>> parse_hf_spec("hf:FreedomIntelligence/medical-o1-reasoning-SFT:en@train[:500]")
HFDatasetSpec(path='FreedomIntelligence/medical-o1-reasoning-SFT', config='en', split='train[:500]', revision=None)
>>> str(parse_hf_spec("hf:owner/name#v1.0"))
'hf:owner/name@train#v1.0'
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from .importers.base import DataError, RawRow

HF_PREFIX = "hf:"
SYNTAX = "hf:ID[:CONFIG][@SPLIT][#REVISION]"


@dataclass(frozen=True)
class HFDatasetSpec:
    path: str
    config: str | None = None
    split: str = "train"
    revision: str | None = None

    @property
    def is_local(self) -> bool:
        return self.path.startswith((".", "/", "~")) or Path(self.path).expanduser().is_dir()

    def __str__(self) -> str:
        config = f":{self.config}" if self.config else ""
        revision = f"#{self.revision}" if self.revision else ""
        return f"{HF_PREFIX}{self.path}{config}@{self.split}{revision}"


def is_hf_spec(value: str | Path) -> bool:
    """True for ``hf:...`` strings (a file of that name on disk is still a file)."""
    text = str(value)
    return text.startswith(HF_PREFIX) and not Path(text).exists()


def parse_hf_spec(spec: str | Path) -> HFDatasetSpec:
    """``hf:ID[:CONFIG][@SPLIT][#REVISION]`` -> HFDatasetSpec; a malformed spec is a DataError."""
    text = str(spec)
    if not text.startswith(HF_PREFIX):
        raise DataError(f"{text!r} is not a Hugging Face dataset spec: use {SYNTAX}")
    body, _, revision = text[len(HF_PREFIX):].partition("#")
    body, _, split = body.partition("@")
    path, _, config = body.partition(":")
    parsed = HFDatasetSpec(path.strip(), config.strip() or None, split.strip() or "train", revision.strip() or None)
    if not parsed.path or not (parsed.is_local or parsed.path.count("/") == 1):
        raise DataError(f"{text!r}: expected {SYNTAX} with ID = owner/name on the Hub or a local dataset folder, "
                        "e.g. hf:FreedomIntelligence/medical-o1-reasoning-SFT:en")
    return parsed


def _offline_message(spec: HFDatasetSpec) -> str:
    save_dir = spec.path.split("/")[-1]
    return (f"dataset {spec.path!r} is not in the local Hugging Face cache and the Hub cannot be reached (offline). "
            f"On a machine with network run `python -c \"import datasets; datasets.load_dataset('{spec.path}'"
            f"{', ' + repr(spec.config) if spec.config else ''}, split='{spec.split}').save_to_disk('{save_dir}')\"`, "
            f"copy the folder here and pass hf:./{save_dir} (or copy the ~/.cache/huggingface/datasets cache)")


def _load_local(spec: HFDatasetSpec) -> Any:
    import datasets

    folder = Path(spec.path).expanduser()
    if not folder.is_dir():
        raise DataError(f"{spec}: no such dataset folder {folder}")
    if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
        loaded = datasets.load_from_disk(str(folder))
        if isinstance(loaded, datasets.DatasetDict):
            if spec.split not in loaded:
                raise DataError(f"{spec}: split {spec.split!r} not in the saved dataset; it has {sorted(loaded)}")
            return loaded[spec.split]
        return loaded
    # A clone of a dataset repository (data files + README): datasets reads it without network.
    return datasets.load_dataset(str(folder), spec.config, split=spec.split)


def _load_hub(spec: HFDatasetSpec) -> Any:
    import datasets

    from ..models.source import hub_reachable

    # Cache first, as model ids do: an offline machine never waits on the network.
    with mock.patch.object(datasets.config, "HF_HUB_OFFLINE", True):
        try:
            return datasets.load_dataset(spec.path, spec.config, split=spec.split, revision=spec.revision)
        except (ConnectionError, FileNotFoundError, ValueError) as e:
            cached_error = e
    if not hub_reachable():
        raise DataError(f"{spec}: {_offline_message(spec)} (cache: {cached_error})") from None
    return datasets.load_dataset(spec.path, spec.config, split=spec.split, revision=spec.revision)


def load_hf_dataset(spec: str | Path | HFDatasetSpec) -> Any:
    """The ``datasets.Dataset`` of one split; any failure is a DataError naming the spec and the fix."""
    parsed = spec if isinstance(spec, HFDatasetSpec) else parse_hf_spec(spec)
    try:
        dataset = _load_local(parsed) if parsed.is_local else _load_hub(parsed)
    except DataError:
        raise
    except ImportError as e:
        raise DataError(f"{parsed}: the `datasets` package is needed for hf: sources ({e}); pip install datasets") from e
    except Exception as e:  # datasets raises many types (DatasetNotFoundError, ValueError for a bad split, ...)
        raise DataError(f"{parsed}: cannot load the dataset: {type(e).__name__}: {e}") from e
    if len(dataset) == 0:
        raise DataError(f"{parsed}: the split is empty")
    return dataset


def iter_hf_rows(spec: str | Path, limit: int | None = None) -> Iterator[RawRow]:
    """The dataset's rows as importer input (``loc`` = 1-based row number), in dataset order."""
    dataset = load_hf_dataset(spec)
    for i, row in enumerate(dataset, start=1):
        if limit is not None and i > limit:
            return
        yield RawRow(i, dict(row))


def dataset_fingerprint(spec: str | Path) -> str:
    """A content identity of the loaded split (datasets' own fingerprint), for data manifests."""
    dataset = load_hf_dataset(spec)
    return str(getattr(dataset, "_fingerprint", "") or f"rows={len(dataset)}")
