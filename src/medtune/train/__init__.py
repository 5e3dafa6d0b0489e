"""Training: SFT with LoRA / QLoRA / DoRA / rsLoRA / full on medtune records.

Public entry points: :func:`train` (config + data -> run folder) and :func:`load_trained`
(run folder -> model with the adapter applied, for eval, export and serving).
"""

from .load import load_trained, read_manifest
from .sft import TrainResult, train

__all__ = ["TrainResult", "load_trained", "read_manifest", "train"]
