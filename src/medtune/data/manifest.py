"""Data manifests: what went into a data set (files, sha256, counts) and with which options.

Every data command that writes records also writes ``manifest.json`` beside them, so a
training run can name exactly which bytes it learned from, and a re-run can tell whether
its inputs changed. Its ``records`` key names the records file(s): a folder is accepted
wherever records are expected (``data.contract.resolve_records``).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from .. import __version__
from ..utils.io import atomic_write_json, sha256_file

MANIFEST_NAME = "manifest.json"


def file_entry(path: str | Path, **fields: Any) -> dict[str, Any]:
    """One input or output file: path, size, sha256 plus any counts the caller adds.

    An ``hf:`` dataset input has no file: it is named by its spec and the ``datasets`` fingerprint.
    """
    from .hf import dataset_fingerprint, is_hf_spec

    if is_hf_spec(path):
        return {"path": str(path), "dataset_fingerprint": dataset_fingerprint(path), **fields}
    path = Path(path)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path), **fields}


def build_manifest(kind: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]],
                   options: dict[str, Any], summary: dict[str, Any] | None = None, *,
                   records: str | dict[str, str] | None = None) -> dict[str, Any]:
    """The manifest of one data folder; ``records`` names the file(s) holding its records, relative
    to the folder (a name, or ``{"train": ..., "val": ...}`` for splits): what ``data.contract`` reads."""
    return {
        "kind": kind,
        "records": records,
        "medtune_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "options": options,
        "inputs": inputs,
        "outputs": outputs,
        "summary": summary or {},
    }


def write_manifest(out_dir: str | Path, manifest: dict[str, Any]) -> Path:
    return atomic_write_json(Path(out_dir) / MANIFEST_NAME, manifest)
