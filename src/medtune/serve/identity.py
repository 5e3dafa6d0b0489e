"""What is served: the model's files, their sha256 and its run id (logged at startup, returned in responses).

The digest names the exact weights: a GGUF's own sha256; for an HF folder the sha256 of its
safetensors file (several shards: the sha256 of "name sha256" lines, sorted); for a training run
folder the same over the base's weights and the adapter's. An upstream endpoint's weights are
not visible from here: its digest is None and the responses say so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..utils.io import sha256_file


@dataclass
class ModelIdentity:
    served_name: str
    backend: str
    source: str
    sha256: str | None
    run_id: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # file -> sha256

    def public(self) -> dict:
        """The fields a response carries (no local paths)."""
        return {"name": self.served_name, "backend": self.backend, "sha256": self.sha256, "run_id": self.run_id}

    def as_dict(self) -> dict:
        return asdict(self)


def digest_files(paths: list[Path]) -> tuple[str, dict[str, str]]:
    """(combined sha256, {file: sha256}); one file's digest is its own."""
    files = {str(p): sha256_file(p) for p in sorted(paths)}
    if len(files) == 1:
        return next(iter(files.values())), files
    lines = "".join(f"{Path(p).name} {h}\n" for p, h in files.items())
    return hashlib.sha256(lines.encode()).hexdigest(), files


def weight_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))


def run_id_of(folder: Path) -> str | None:
    """The run id of a run folder (manifest) or of an exported merged folder (medtune_export.json)."""
    for name, key in (("manifest.json", "run_id"), ("medtune_export.json", "run_id")):
        path = folder / name
        if path.is_file():
            try:
                value = json.loads(path.read_text(encoding="utf-8")).get(key)
            except (json.JSONDecodeError, OSError):
                continue
            if value:
                return str(value)
    return None

