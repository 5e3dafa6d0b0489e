"""Serving backends behind one interface (``base.Backend``): llama.cpp, transformers, an OpenAI-compatible upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..identity import ModelIdentity
from .base import Backend, BackendError, Finished, Piece, Prepared, Prompt, SamplingParams

__all__ = ["Backend", "BackendError", "Finished", "Piece", "Prepared", "Prompt", "SamplingParams", "build_backend",
           "pick_backend"]


def pick_backend(settings: Any, model: str | None = None) -> str:
    """auto: llama.cpp for a .gguf file, transformers for anything else a model spec names."""
    if settings.backend != "auto":
        return settings.backend
    return "llamacpp" if str(model or settings.model or "").endswith(".gguf") else "transformers"


def resolve_served_model(spec: str) -> str:
    """A `medtune run` folder (RUN/stages/) serves what its serve stage chose (the exported GGUF, or the
    trained model), else its training run RUN/train; any other spec is served as named."""
    from ...pipeline.manifest import read_manifest

    run = Path(spec)
    if not (run / "stages").is_dir():
        return spec
    served = read_manifest(run / "stages", "serve")
    if served and served.status == "complete" and (served.result or {}).get("model"):
        return str(served.result["model"])
    if (run / "train" / "manifest.json").is_file():
        return str(run / "train")
    raise BackendError(f"{spec} is a `medtune run` folder with no trained model yet: run its stages through train "
                       "(medtune run CONFIG), or name a model", 500)


def build_backend(settings: Any) -> tuple[Backend, ModelIdentity]:
    """Load the model named by the settings; raises BackendError (or ModelLoadError) with the fix."""
    if pick_backend(settings) == "openai":
        from .upstream import build_upstream

        return build_upstream(settings)
    if not settings.model:
        raise BackendError("nothing to serve: give a model (medtune serve MODEL, or serve.model in the config)", 500)
    model = resolve_served_model(settings.model)
    if pick_backend(settings, model) == "llamacpp":
        if not Path(model).is_file():
            raise BackendError(f"GGUF file not found: {model}", 500)
        try:
            from .llamacpp import build_llamacpp
        except ImportError as e:
            raise BackendError(f"serving a GGUF needs llama-cpp-python: pip install 'medtune[gguf]' ({e})", 500) from e
        return build_llamacpp(model, settings)
    from .hf import build_transformers

    try:
        return build_transformers(model, settings)
    except (OSError, ValueError) as e:  # a folder that is no model (transformers raises these), at startup only
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BackendError(f"{model}: not a model medtune can load (a .gguf, a model folder, a training run "
                           f"folder or a preset): {first}", 500) from e
