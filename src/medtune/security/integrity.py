"""Model integrity: the file about to be served must be the file ``medtune export`` wrote.

``export_summary.json`` (written by ``medtune.export``) lists each exported file under
``files.<type>`` with its ``path`` and ``bytes`` (and ``sha256`` where the exporter records it).
A file listed there is checked against it; a mismatch refuses to serve.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..utils.io import sha256_file
from . import SecurityError

MANIFEST_NAME = "export_summary.json"


class ModelIntegrityError(SecurityError):
    """The model file does not match its export manifest."""


@dataclass(frozen=True)
class ModelIntegrity:
    path: str
    sha256: str
    manifest: str | None
    checked: str  # "sha256", "size" (the manifest records no digest) or "no manifest"


def find_export_manifest(model_path: str | Path) -> Path | None:
    """The export manifest beside a model file (or inside a model folder), if there is one."""
    p = Path(model_path)
    candidate = (p if p.is_dir() else p.parent) / MANIFEST_NAME
    return candidate if candidate.is_file() else None


def _entry_for(model: Path, manifest: Path, data: Any) -> dict:
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise ModelIntegrityError(f"{manifest}: no `files` table; is this an export_summary.json?")
    for entry in files.values():
        if not isinstance(entry, dict) or "path" not in entry:
            continue
        listed = Path(entry["path"])
        listed = listed if listed.is_absolute() else manifest.parent / listed
        same_file = listed.exists() and listed.resolve() == model.resolve()
        if same_file or listed.name == model.name:
            return entry
    raise ModelIntegrityError(f"{model.name} is not listed in {manifest}: serve a file that `medtune export` wrote, "
                              "or move it out of the export folder")


def verify_model_file(path: str | Path, export_manifest: str | Path | None = None) -> ModelIntegrity:
    """sha256 of ``path``, checked against ``export_manifest`` (default: the one beside it).

    Raises :class:`ModelIntegrityError` when the manifest lists a different digest or size.
    """
    model = Path(path)
    if not model.is_file():
        raise ModelIntegrityError(f"{model}: model file not found")
    digest = sha256_file(model)
    manifest = Path(export_manifest) if export_manifest else find_export_manifest(model)
    if manifest is None:
        return ModelIntegrity(str(model), digest, None, "no manifest")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelIntegrityError(f"{manifest}: unreadable export manifest ({e})") from None
    entry = _entry_for(model, manifest, data)
    if entry.get("sha256"):
        if entry["sha256"] != digest:
            raise ModelIntegrityError(f"{model}: sha256 {digest} differs from {entry['sha256']} in {manifest}; "
                                      "the file changed after export: refusing to serve it")
        return ModelIntegrity(str(model), digest, str(manifest), "sha256")
    size = model.stat().st_size
    if entry.get("bytes") is not None and int(entry["bytes"]) != size:
        raise ModelIntegrityError(f"{model}: {size} bytes, {manifest} lists {entry['bytes']}; "
                                  "the file changed after export: refusing to serve it")
    return ModelIntegrity(str(model), digest, str(manifest), "size")
