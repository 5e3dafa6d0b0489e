"""Setup for a training run: precision and accelerator, base model + PEFT adapter, optimizer and LR schedule.

Everything here is a thin choice between library implementations (PEFT's LoRA/DoRA/rsLoRA,
bitsandbytes' 4-bit and 8-bit Adam, transformers' Adafactor and schedulers); what medtune adds
is resolving target modules from the preset and refusing impossible combinations clearly.
"""

from __future__ import annotations

import math
from typing import Any

from ..config.load import ConfigError, ConfigProblem
from ..config.schema import RunConfig
from ..config.sections.train import TrainSection
from ..models.registry import Preset


def linear_module_names(model: Any) -> set[str]:
    """Short names (last path component) of every Linear-like layer except the LM head."""
    import torch

    names = set()
    for full, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, torch.nn.Linear) or kind in ("Linear4bit", "Linear8bitLt", "Conv1D"):
            short = full.rsplit(".", 1)[-1]
            if short not in ("lm_head", "embed_out", "output"):
                names.add(short)
    return names


def resolve_target_modules(model: Any, requested: list[str] | str, preset: Preset | None) -> list[str] | str:
    """Turn ``preset`` / ``all-linear`` / a list into module names that exist in this model.

    A preset may name modules from the model's original code (phi-2's fused ``Wqkv``); its
    ``target_module_aliases`` say what they are called in transformers' native implementation.
    """
    if requested == "all-linear" or (requested == "preset" and preset is None):
        return "all-linear"
    wanted = list(preset.lora_target_modules) if requested == "preset" else list(requested)
    present = linear_module_names(model)
    aliases = preset.target_module_aliases if preset else {}
    out: list[str] = []
    for name in wanted:
        if name in present:
            out.append(name)
        elif all(a in present for a in aliases.get(name, [None])):
            out.extend(aliases[name])
        else:
            raise ConfigError([ConfigProblem(
                "train.lora.target_modules", f"module {name!r} does not exist in this model",
                f"use names from {sorted(present)} or `all-linear`")], "train")
    return sorted(set(out))


def apply_peft(model: Any, train: TrainSection, preset: Preset | None) -> Any:
    """Wrap the base in a PEFT LoRA model (DoRA / rsLoRA / QLoRA are LoRA variants)."""
    if train.method == "full":
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    if train.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=train.gradient_checkpointing)
        _frozen_embeddings_to_compute_dtype(model)
    return get_peft_model(model, lora_config(model, train, preset))


def lora_config(model: Any, train: TrainSection, preset: Preset | None) -> Any:
    """PEFT's LoraConfig for ``train.lora`` and the method (DoRA / rsLoRA / QLoRA are LoRA variants)."""
    from peft import LoraConfig

    return LoraConfig(
        r=train.lora.r, lora_alpha=train.lora.alpha, lora_dropout=train.lora.dropout, bias=train.lora.bias,
        target_modules=resolve_target_modules(model, train.lora.target_modules, preset), task_type="CAUSAL_LM",
        use_dora=train.method == "dora", use_rslora=train.method == "rslora",
    )


def _frozen_embeddings_to_compute_dtype(model: Any) -> None:
    """Undo PEFT's fp32 upcast of the frozen input embeddings and LM head after 4-bit loading.

    ``prepare_model_for_kbit_training`` casts every non-4-bit weight to fp32 for stability; norms
    keep that, but the embeddings and LM head of an 8B model are 1.05B parameters: 3.9 GiB in fp32
    versus 2.0 GiB in bf16, and under autocast the head is cast back to bf16 for its matmul anyway
    (one more 1 GiB copy per step). They stay in the 4-bit compute dtype (bf16/fp16).
    """
    compute = getattr(getattr(model, "config", None), "quantization_config", None)
    dtype = getattr(compute, "bnb_4bit_compute_dtype", None)
    if dtype is None:
        return
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        if module is not None and module.weight.dtype != dtype:
            module.weight.data = module.weight.data.to(dtype)


def build_optimizer(model: Any, train: TrainSection) -> Any:
    """The configured optimizer over trainable parameters; weight decay skips biases and norms."""
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if train.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=train.learning_rate)
    if train.optimizer == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(groups, lr=train.learning_rate, scale_parameter=False, relative_step=False, warmup_init=False)
    try:
        import bitsandbytes as bnb
    except ImportError as e:
        raise ConfigError([ConfigProblem("train.optimizer", "adamw_8bit needs bitsandbytes (CUDA)",
                                         "pip install 'medtune[gpu]' or use train.optimizer=adamw")], "train") from e
    return bnb.optim.AdamW8bit(groups, lr=train.learning_rate)


def warmup_steps(train: TrainSection, total_steps: int) -> int:
    """warmup_steps wins when set; otherwise warmup_ratio of the total.

    >>> from medtune.config.sections.train import TrainSection
    >>> warmup_steps(TrainSection(warmup_ratio=0.1), 95), warmup_steps(TrainSection(warmup_steps=5), 95)
    (10, 5)
    """
    return train.warmup_steps if train.warmup_steps > 0 else math.ceil(train.warmup_ratio * total_steps)


def build_scheduler(optimizer: Any, train: TrainSection, total_steps: int) -> Any:
    from transformers import get_scheduler

    name = "constant_with_warmup" if train.scheduler == "constant" else train.scheduler
    return get_scheduler(name, optimizer, num_warmup_steps=warmup_steps(train, total_steps), num_training_steps=total_steps)


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def resolve_precision(cfg: RunConfig, device: str) -> Any:
    """The run's arithmetic (``models.precision.train_precision``): autocast dtype and base weight dtype."""
    from ..models.precision import train_precision

    return train_precision(device, cfg.train.precision, cfg.model.dtype, cfg.train.method)


def loads_in_4bit(cfg: RunConfig) -> bool:
    """Whether the base loads in 4-bit: ``train.method=qlora`` or ``model.load_in_4bit`` (every stage asks this)."""
    return cfg.train.method == "qlora" or cfg.model.load_in_4bit


def make_accelerator(mixed_precision: str, cpu: bool) -> Any:
    """accelerate's Accelerator; a second run in one process (tests, notebooks) may use another precision.

    accelerate keeps one ``AcceleratorState`` per process and refuses a different ``mixed_precision``
    later, so a stale one is forgotten first (its distributed ``PartialState`` is kept).
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") != mixed_precision:
        AcceleratorState._reset_state()
    return Accelerator(mixed_precision=mixed_precision, cpu=cpu)
