"""What every export step shares: the error type, the llama.cpp install hint, and run provenance.

A "run" is a training output folder (``RUN/adapter`` or ``RUN/model`` plus
``RUN/manifest.json`` and ``RUN/config.yaml``); a "merged" folder is a plain HF model
folder. Export accepts either, so ``read_provenance`` knows how to describe both.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from .. import __version__
from ..utils.extras import install_hint
from ..utils.io import sha256_text

LLAMA_CPP_HINT = f"this step needs llama.cpp's Python binding: {install_hint('llama_cpp')}"
PROVENANCE_FILE = "medtune_export.json"


class ExportError(RuntimeError):
    """An export step cannot proceed; the message names the file and the fix."""


class LlamaCppMissing(ExportError):
    """llama-cpp-python is not installed (K-quants and verification need it)."""


def require_llama_cpp() -> Any:
    """Import llama_cpp or raise a one-line error naming the install command.

    >>> callable(require_llama_cpp)
    True
    """
    try:
        import llama_cpp
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise LlamaCppMissing(f"llama-cpp-python is not installed; {LLAMA_CPP_HINT}") from e
    return llama_cpp


# ggml's AMX kernels, compiled in by -march=native on AMX CPUs (Sapphire Rapids and later), load
# their tile configuration from a stack buffer that GCC 12 leaves mostly unwritten: the first
# Q8_0/K-quant matmul dies with a general protection fault (ggml-org/llama.cpp#20824, #26954).
# F32/F16/BF16 tensors never reach the tile instructions.
AMX_SAFE_TYPES = ("F32", "F16", "BF16")
AMX_REBUILD = ("CFLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16' CXXFLAGS=$CFLAGS pip install --no-cache-dir "
               "--force-reinstall --no-deps llama-cpp-python  (or: bash scripts/install_llama_cpp.sh)")


@functools.lru_cache(maxsize=1)
def llama_cpp_amx_problem() -> str | None:
    """A one-line warning with the rebuild command when llama-cpp-python was built with AMX kernels."""
    info = require_llama_cpp().llama_print_system_info().decode(errors="replace")
    if "AMX_INT8 = 1" not in info:
        return None
    return ("llama-cpp-python was built with ggml's AMX kernels, which crash on quantized (Q8_0, K-quant) "
            f"models; rebuild it without them: {AMX_REBUILD}")


@dataclass
class Provenance:
    """Where a model came from; written into GGUF metadata, the model card and the Modelfile."""

    base_model: str = "unknown"
    run_id: str | None = None
    data_manifest_sha256: str | None = None
    reasoning_format: str = "plain"
    medtune_version: str = __version__
    method: str | None = None
    datasets: list[str] | None = None
    adapter_sha256: str | None = None
    system_prompt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        """From a written provenance (medtune_export.json, export_summary.json); keys of other versions are left out."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def is_hf_folder(path: Path) -> bool:
    """An HF model folder: config.json plus safetensors weights."""
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def is_run_folder(path: Path) -> bool:
    return (path / "adapter" / "adapter_config.json").is_file() or is_hf_folder(path / "model")


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ExportError(f"{path}:{e.lineno}: invalid JSON ({e.msg}); fix or delete the file") from e


def read_run_config(run: Path) -> dict[str, Any]:
    """RUN/config.yaml as a plain dict (not re-validated: old runs must stay exportable)."""
    path = run / "config.yaml"
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ExportError(f"{path}{line}: invalid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ExportError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _first(d: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if d.get(key):
            return d[key]
    return None


def read_provenance(folder: Path) -> Provenance:
    """Provenance of a run folder (manifest + config) or of a merged folder (its medtune_export.json)."""
    own = folder / PROVENANCE_FILE
    if own.is_file():
        return Provenance.from_dict(read_json(own))
    manifest = read_json(folder / "manifest.json") if (folder / "manifest.json").is_file() else {}
    cfg = read_run_config(folder)
    model_cfg = cfg.get("model") or {}
    data_cfg = cfg.get("data") or {}
    train_cfg = cfg.get("train") or {}
    data_sha = _first(manifest, "data_manifest_sha256", "data_sha256", "data_manifest_hash")
    if data_sha is None and isinstance(manifest.get("data"), dict):
        data_sha = _first(manifest["data"], "sha256", "manifest_sha256")
    if data_sha is not None and not isinstance(data_sha, str):
        # the trainer records {file: sha256}; one digest over it names the whole data set
        data_sha = sha256_text(json.dumps(data_sha, sort_keys=True))
    datasets = data_cfg.get("train_files") or data_cfg.get("datasets")
    if not datasets and isinstance(manifest.get("data_files"), (dict, list)):
        datasets = list(manifest["data_files"])
    if isinstance(datasets, list):
        datasets = [Path(str(d.get("name", d.get("path", d))) if isinstance(d, dict) else str(d)).name for d in datasets]
    return Provenance(
        base_model=str(_first(manifest, "base_model") or model_cfg.get("base") or "unknown"),
        run_id=_first(manifest, "run_id") or cfg.get("name"),
        data_manifest_sha256=data_sha,
        reasoning_format=str(_first(manifest, "reasoning_format") or _configured_format(model_cfg, manifest)),
        method=_first(manifest, "method") or train_cfg.get("method"),
        datasets=datasets if isinstance(datasets, list) else None,
        system_prompt=data_cfg.get("system_prompt"),
    )


def _configured_format(model_cfg: dict[str, Any], manifest: dict[str, Any]) -> str:
    """The reasoning format of a run whose manifest records none: its config's, else its base's default
    (``plain`` when the base is unknown)."""
    from ..models.source import ModelLoadError, resolve_source

    fmt = model_cfg.get("reasoning_format")
    if isinstance(fmt, str) and fmt != "auto":
        return fmt
    base = _first(manifest, "base_model") or model_cfg.get("base")
    try:
        return resolve_source(str(base)).reasoning_format if base else "plain"
    except ModelLoadError:
        return "plain"


def base_spec(run: Path) -> str:
    """The base model to load for a run: what ``train.load.adapter_base`` resolves (a second stage's
    ``init_model``, the manifest's base_path while it exists, else its base_model at its base_revision);
    a run whose manifest names no base falls back to config model.base at model.revision."""
    from ..models.source import ModelLoadError
    from ..train.load import adapter_base

    manifest = read_json(run / "manifest.json") if (run / "manifest.json").is_file() else {}
    if not (manifest.get("init_model") or manifest.get("base_model")):
        model_cfg = read_run_config(run).get("model") or {}
        manifest = {**manifest, "base_model": model_cfg.get("base"), "base_revision": model_cfg.get("revision")}
    on_disk = manifest.get("base_path") and Path(manifest["base_path"]).exists()
    if not (manifest.get("base_model") or manifest.get("init_model") or on_disk):
        raise ExportError(
            f"{run}: cannot tell which base model the adapter belongs to; "
            "add `model.base` to config.yaml or `base_model` to manifest.json"
        )
    try:
        return adapter_base(run, manifest)
    except ModelLoadError as e:  # its adapter cannot be merged onto anything else
        raise ExportError(f"{run}: {e}") from None
