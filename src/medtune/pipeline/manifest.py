"""One manifest per stage (RUN/stages/<stage>.json): what it read, what it wrote, when, with what.

A manifest is written when a stage starts (``running``) and again when it ends (``complete``
or ``failed``), so a run killed in the middle leaves a ``running`` manifest whose key says
which inputs the interrupted work belongs to: the same key next time means "resume", another
key means "start over".
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..utils.io import atomic_write_json
from .fingerprint import digest


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class StageManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: str
    status: Literal["running", "complete", "failed"]
    key: str = Field(description="sha256 of the section values and input fingerprints")
    section: dict[str, Any] = Field(description="the config values the stage reads, flattened")
    inputs: dict[str, str] = Field(description="label -> fingerprint of each input file, folder or identifier")
    outputs: dict[str, str] = Field(default_factory=dict, description="path -> fingerprint of each output")
    result: dict[str, Any] | None = Field(None, description="the stage's typed result, for the stages after it")
    started: str
    finished: str | None = None
    seconds: float | None = None
    resumed: bool = False
    error: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)


def stage_key(stage: str, section: dict[str, Any], inputs: dict[str, str]) -> str:
    return digest({"stage": stage, "section": section, "inputs": inputs})


def manifest_path(stages_dir: Path, stage: str) -> Path:
    return stages_dir / f"{stage}.json"


def read_manifest(stages_dir: Path, stage: str) -> StageManifest | None:
    """The stage's manifest, or None when there is none (or it is unreadable: treated as never run)."""
    path = manifest_path(stages_dir, stage)
    try:
        return StageManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, ValidationError):
        return None


def write_manifest(stages_dir: Path, manifest: StageManifest) -> Path:
    return atomic_write_json(manifest_path(stages_dir, manifest.stage), manifest.model_dump(mode="json"))


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def what_changed(old: StageManifest, section: dict[str, Any], inputs: dict[str, str]) -> list[str]:
    """Human reasons a stage's key changed: each config value (old -> new) and each input."""
    out = [f"{k} {_short(old.section.get(k))} -> {_short(section.get(k))}"
           for k in sorted(set(old.section) | set(section)) if old.section.get(k) != section.get(k)]
    out += [f"{label} changed" if label in old.inputs and label in inputs else
            (f"new input {label}" if label in inputs else f"input {label} dropped")
            for label in sorted(set(old.inputs) | set(inputs)) if old.inputs.get(label) != inputs.get(label)]
    return out
