from pydantic import Field

from .base import CommaList, Section


class ExportSection(Section):
    gguf: CommaList = Field(default_factory=lambda: ["q8_0"], description="GGUF types: f16, bf16, q8_0, q4_k_m, q5_k_m (K-quants need llama-cpp-python).")
    verify: bool = Field(True, description="Check the GGUF against the merged HF model after export.")
    ollama: bool = Field(True, description="Write an Ollama Modelfile.")
    model_card: bool = Field(True, description="Write a model card README.md.")
