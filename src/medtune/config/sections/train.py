from typing import Literal

from pydantic import Field

from .base import Section


class LoraSection(Section):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r, or alpha / sqrt(r) with rsLoRA).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["preset", "all-linear"] = Field(
        "preset", description="Module names to adapt; `preset` = the base preset's list; `all-linear`."
    )
    bias: Literal["none", "all", "lora_only"] = Field("none", description="Which biases to train.")


class TrainSection(Section):
    method: Literal["lora", "qlora", "dora", "rslora", "full"] = Field("lora", description="Fine-tuning method.")
    lora: LoraSection = Field(default_factory=LoraSection)
    optimizer: Literal["adamw", "adamw_8bit", "adafactor"] = Field("adamw", description="adamw_8bit needs CUDA + bitsandbytes.")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate.")
    scheduler: Literal["linear", "cosine", "constant"] = Field("cosine", description="LR schedule after warmup.")
    warmup_steps: int = Field(0, ge=0, description="Warmup steps (wins over warmup_ratio when > 0).")
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Warmup as a share of total steps.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    epochs: float = Field(1.0, gt=0, description="Epochs (ignored when max_steps > 0).")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1 = use epochs).")
    batch_size: int = Field(4, ge=1, description="Per-device micro-batch size (sequences, or packs).")
    grad_accum: int = Field(1, ge=1, description="Gradient accumulation steps.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Matmul precision (autocast; master weights and optimizer states stay fp32). auto = bf16 on "
        "CUDA GPUs that support it (else fp16) and on CPUs with native bf16 (AVX512-BF16/AMX-BF16), fp32 on other "
        "CPUs; `medtune doctor` says which. fp16 needs CUDA; bf16 on a CPU without native bf16 is refused (emulated, slower).")
    packing: bool = Field(True, description="Padding-free packing: samples share rows of data.max_length tokens (position ids restart per sample); batch_size = packs per step.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping.")
    eval_steps: int = Field(0, ge=0, description="Evaluate loss on the validation split every N steps (0 = never).")
    early_stopping_patience: int = Field(0, ge=0, description="Stop after N evaluations without improvement (0 = off).")
    keep_best: bool = Field(True, description="Keep the best checkpoint by eval loss as the final adapter.")
    save_steps: int = Field(0, ge=0, description="Checkpoint every N steps (0 = only at the end).")
    save_total_limit: int = Field(2, ge=1, description="Keep the last K checkpoints.")
    logging_steps: int = Field(10, ge=1, description="Log loss every N steps.")
    seed: int = Field(42, description="Random seed.")
