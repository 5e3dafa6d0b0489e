from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Section


class LoraSection(Section):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r, or alpha / sqrt(r) with rsLoRA).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["preset", "all-linear"] = Field(
        "preset", description="Module names to adapt; `preset` = the base preset's list; `all-linear`."
    )
    bias: Literal["none", "all", "lora_only"] = Field("none", description="Which biases to train.")


class RewardWeights(Section):
    """Weights of the GRPO reward terms (``medtune.train.rewards``); each term is also logged on its own."""

    correct: float = Field(1.0, description="Answer correctness: the eval extractor's letter equals the gold letter (1/0).")
    format: float = Field(0.1, description="Reasoning format kept: reasoning then exactly one final answer, in order (1/0).")
    length: float = Field(0.0, ge=0.0, description="Overlong penalty: minus the share of the completion budget used past 80%.")


class RLSection(Section):
    """Settings of the second training stage (``train.stage`` grpo, dpo or orpo), run through TRL."""

    beta: float = Field(0.1, ge=0.0, description="DPO/ORPO preference strength; GRPO's KL coefficient to the starting policy (0 = no reference model).")
    num_generations: int = Field(4, ge=2, description="GRPO: completions sampled per prompt (the group whose rewards are compared).")
    max_completion_length: int = Field(128, ge=8, description="GRPO / on-policy pairs: new tokens per sampled completion.")
    temperature: float = Field(1.0, gt=0.0, description="GRPO / on-policy pairs: sampling temperature.")
    sft_weight: float = Field(0.0, ge=0.0, description="DPO: weight of a negative log-likelihood term on the chosen "
                              "answer beside the preference loss (RPO); keeps the chosen answer likely while the "
                              "rejected one is pushed down (plain DPO lowers both). ORPO has this term built in.")
    rewards: RewardWeights = Field(default_factory=RewardWeights)
    use_vllm: bool = Field(False, description="GRPO on a CUDA GPU: generate through vLLM colocated with training "
                           "(needs the vllm extra); otherwise TRL generates each step's completions as one batch.")
    pairs: Literal["auto", "synth", "on_policy"] = Field(
        "auto", description="DPO/ORPO pairs: auto = the data's own chosen/rejected pairs, else pairs built from its "
        "lettered MCQ records (synth: the record's reasoning and answer vs the same reasoning ending in a distractor); "
        "on_policy = the starting model's own samples, best vs worst by the reward.")


class TrainSection(Section):
    stage: Literal["sft", "grpo", "dpo", "orpo"] = Field(
        "sft", description="Training stage: sft (supervised), or a second stage through TRL: grpo (verifiable "
        "rewards), dpo or orpo (preference pairs). Start it from an SFT run with train.init_from.")
    init_from: str | None = Field(
        None, description="Start from this trained run (a `medtune train` folder, or a `medtune run` folder: its train "
        "stage), or a recipe file whose train stage `medtune run` runs first; its adapter is merged into the base "
        "and a new adapter is trained on top.")
    rl: RLSection = Field(default_factory=RLSection)
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

    @model_validator(mode="after")
    def _grpo_groups_fit(self) -> TrainSection:
        if self.stage == "grpo" and (self.batch_size * self.grad_accum) % self.rl.num_generations:
            raise ValueError(f"grpo samples train.rl.num_generations={self.rl.num_generations} completions per prompt: "
                             f"batch_size x grad_accum ({self.batch_size} x {self.grad_accum}) must be a multiple of it")
        return self
