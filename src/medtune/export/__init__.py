"""Export: merge adapters, convert to GGUF, quantize, verify against HF, Ollama Modelfile, model card.

Entry points for other stages: ``export_run`` (the whole chain), ``rewrite_model_card`` (the card alone,
after a new evaluation), ``merge_run``, ``convert_hf_to_gguf``, ``quantize_gguf``, ``verify_ggufs``.
"""

from .common import LLAMA_CPP_HINT, ExportError, LlamaCppMissing, Provenance
from .gguf import convert_hf_to_gguf
from .merge import merge_run
from .pipeline import export_run, llama_cpp_available, rewrite_model_card
from .quantize import quantize_gguf
from .verify import verify_ggufs

__all__ = ["LLAMA_CPP_HINT", "ExportError", "LlamaCppMissing", "Provenance", "convert_hf_to_gguf", "export_run",
           "llama_cpp_available", "merge_run", "quantize_gguf", "rewrite_model_card", "verify_ggufs"]
