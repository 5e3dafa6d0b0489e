"""Serving backends behind one interface (``base.Backend``): llama.cpp, transformers, an OpenAI-compatible upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..identity import ModelIdentity
from .base import Backend, BackendError, Finished, Piece, Prepared, Prompt, SamplingParams

__all__ = ["Backend", "BackendError", "Finished", "Piece", "Prepared", "Prompt", "SamplingParams", "build_backend",
           "pick_backend"]


def pick_backend(settings: Any) -> str:
    """auto: llama.cpp for a .gguf file, transformers for anything else a model spec names."""
    if settings.backend != "auto":
        return settings.backend
    return "llamacpp" if str(settings.model or "").endswith(".gguf") else "transformers"


def build_backend(settings: Any) -> tuple[Backend, ModelIdentity]:
    """Load the model named by the settings; raises BackendError (or ModelLoadError) with the fix."""
    kind = pick_backend(settings)
    if kind == "openai":
        from .upstream import build_upstream

        return build_upstream(settings)
    if not settings.model:
        raise BackendError("nothing to serve: give a model (medtune serve MODEL, or serve.model in the config)", 500)
    if kind == "llamacpp":
        if not Path(settings.model).is_file():
            raise BackendError(f"GGUF file not found: {settings.model}", 500)
        try:
            from .llamacpp import build_llamacpp
        except ImportError as e:
            raise BackendError(f"serving a GGUF needs llama-cpp-python: pip install 'medtune[gguf]' ({e})", 500) from e
        return build_llamacpp(settings.model, settings)
    from .hf import build_transformers

    return build_transformers(settings.model, settings)
