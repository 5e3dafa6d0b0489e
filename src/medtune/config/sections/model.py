from typing import Literal

from pydantic import Field

from .base import Section


class ModelSection(Section):
    base: str = Field(
        "smollm2-135m",
        description="Base model: a preset name (`medtune models list`), a Hugging Face id, "
        "a local HF folder, or a .gguf file.",
    )
    revision: str | None = Field(None, description="HF revision (branch, tag or commit) for HF ids; refused with a folder, .gguf or the embedded model. Recorded in the run manifest (base_revision).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Dtype the base weights are loaded in. auto = bf16 on CUDA where supported (else fp16) and "
        "on CPUs with native bf16 (AVX512-BF16/AMX-BF16), fp32 elsewhere; in training a fully tuned model keeps fp32 "
        "weights and train.precision=fp32 loads fp32. Evaluation (`medtune eval run`, the run's eval stage) loads in it too. "
        "Merge and GGUF export always use fp32."
    )
    load_in_4bit: bool = Field(
        False, description="Load the base in 4-bit nf4 with double quantization (QLoRA). CUDA only."
    )
    trust_remote_code: bool = Field(False, description="Allow model code from the hub (off by default).")
    reasoning_format: Literal["auto", "think", "sections", "plain"] = Field(
        "auto",
        description="How reasoning is laid out in the assistant turn: `think` = <think>...</think>, "
        "`sections` = ## Thinking / ## Final Response, `plain` = reasoning then answer. "
        "auto = the format a merged folder or medtune GGUF recorded, else the preset's (sections for unknown models, "
        "plain for other GGUFs).",
    )

    def resolved_reasoning_format(self, source_format: str) -> str:
        """This section's reasoning format, or ``source_format`` (the loaded model's preset) when it is auto."""
        return source_format if self.reasoning_format == "auto" else self.reasoning_format
