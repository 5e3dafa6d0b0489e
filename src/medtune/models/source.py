"""Resolve a model spec to its source (preset name, HF id, local HF folder, or a .gguf file); loads nothing.

Instantiating the model from a source is `models.load`."""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from .embedded import EMBEDDED_NAME, materialize_embedded
from .registry import Preset, find_preset_by_hf_id, get_preset


class ModelLoadError(RuntimeError):
    """A base model could not be provided; the message says what to do."""


@dataclass
class ModelSource:
    kind: Literal["embedded", "hf_id", "local_dir", "gguf"]
    location: str
    preset: Preset | None = None

    @property
    def reasoning_format(self) -> str:
        return self.preset.reasoning_format if self.preset else "sections"


def resolve_source(spec: str) -> ModelSource:
    """Classify a model spec without loading anything.

    >>> resolve_source("smollm2-135m").kind
    'embedded'
    >>> resolve_source("Qwen/Qwen2.5-0.5B-Instruct").preset.name
    'qwen2.5-0.5b-instruct'
    """
    if spec == EMBEDDED_NAME or spec.lower() == "huggingfacetb/smollm2-135m-instruct" and not Path(spec).exists():
        return ModelSource("embedded", EMBEDDED_NAME, get_preset(EMBEDDED_NAME))
    preset = get_preset(spec)
    if preset is not None:
        return ModelSource("hf_id", preset.hf_id, preset)
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file not found: {path}")
        return ModelSource("gguf", str(path), None)
    if path.is_dir():
        return ModelSource("local_dir", str(path), _preset_for_dir(path))
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return ModelSource("hf_id", spec, find_preset_by_hf_id(spec))
    raise ModelLoadError(
        f"Unknown model {spec!r}: not a preset (`medtune models list`), an existing folder, a .gguf file, "
        "or an HF id of the form owner/name."
    )


def _preset_for_dir(path: Path) -> Preset | None:
    import json

    cfg = path / "config.json"
    if cfg.is_file():
        name = json.loads(cfg.read_text()).get("_name_or_path") or ""
        return find_preset_by_hf_id(name) if "/" in name else None
    return None


def hub_reachable(timeout: float = 4.0) -> bool:
    """Can we open a TCP connection to the Hub? Runs in a thread so a hanging DNS lookup
    cannot block us for minutes (offline machines often time out in the resolver)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 1.0)
    return bool(result and result[0])


def _offline_message(hf_id: str) -> str:
    return (
        f"Model {hf_id!r} is not in the local Hugging Face cache and the Hub cannot be reached "
        "(offline). To use it here: on a machine with network run "
        f"`huggingface-cli download {hf_id} --local-dir ./{hf_id.split('/')[-1]}`, copy that folder "
        f"to this machine and pass it: model.base=./{hf_id.split('/')[-1]} (or copy the whole "
        "~/.cache/huggingface/hub cache). The embedded default `smollm2-135m` needs no network."
    )


def ensure_local(source: ModelSource, revision: str | None = None) -> Path:
    """Return a local folder (or .gguf path) holding the model, fetching it if we can."""
    if source.kind == "embedded":
        return materialize_embedded()
    if source.kind in ("local_dir", "gguf"):
        return Path(source.location)
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
    try:
        return Path(snapshot_download(source.location, revision=revision, local_files_only=True, allow_patterns=patterns))
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        pass
    if not hub_reachable():
        raise ModelLoadError(_offline_message(source.location))
    try:
        return Path(snapshot_download(source.location, revision=revision, allow_patterns=patterns))
    except Exception as e:
        raise ModelLoadError(f"Could not download {source.location!r}: {e}. {_offline_message(source.location)}") from e
