"""Load tokenizer and model (any base kind) with the right device, dtype and quantization."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .source import ModelLoadError, ModelSource, ensure_local, resolve_source


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str, requested: str = "auto"):
    """The torch dtype to load weights in: ``requested``, or for `auto` the machine's fastest
    arithmetic that keeps results (``precision.auto_precision``: bf16 on CUDA and on CPUs with
    native bf16, fp16 on GPUs without bf16, fp32 elsewhere)."""
    import torch

    from .precision import inference_dtype

    return getattr(torch, inference_dtype(device, requested))


def bnb_4bit_config(compute_dtype) -> Any:
    """QLoRA's quantization: 4-bit NormalFloat with double quantization (Dettmers et al., 2023)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def _from_pretrained_args(source: ModelSource, local: Path) -> tuple[str, dict]:
    if source.kind == "gguf":
        return str(local.parent), {"gguf_file": local.name}
    return str(local), {}


def load_tokenizer(spec: str | ModelSource, revision: str | None = None, padding_side: str = "right"):
    """Tokenizer with a pad token and a chat template (the preset's, when the model has none)."""
    from transformers import AutoTokenizer

    source = resolve_source(spec) if isinstance(spec, str) else spec
    local = ensure_local(source, revision)
    path, extra = _from_pretrained_args(source, local)
    tok = AutoTokenizer.from_pretrained(path, **extra)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not getattr(tok, "chat_template", None) and source.preset and source.preset.chat_template:
        tok.chat_template = source.preset.chat_template
    if not getattr(tok, "chat_template", None):
        raise ModelLoadError(
            f"{source.location}: the tokenizer has no chat template and no preset provides one; "
            "add `chat_template` to tokenizer_config.json or use a preset."
        )
    tok.padding_side = padding_side
    return tok


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    source: ModelSource
    device: str
    dtype: Any
    path: Path


def load_model(
    spec: str | ModelSource,
    *,
    device: str = "auto",
    dtype: str = "auto",
    load_in_4bit: bool = False,
    revision: str | None = None,
    trust_remote_code: bool = False,
    padding_side: str = "right",
    attn_implementation: str | None = None,
) -> LoadedModel:
    """Load any base. 4-bit (QLoRA) needs CUDA + bitsandbytes; asking for it elsewhere is an error."""
    from transformers import AutoModelForCausalLM

    source = resolve_source(spec) if isinstance(spec, str) else spec
    dev = pick_device(device)
    torch_dtype = pick_dtype(dev, dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if load_in_4bit:
        if not dev.startswith("cuda"):
            raise ModelLoadError("4-bit (QLoRA) loading needs a CUDA GPU; on this machine use method=lora with load_in_4bit=false.")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as e:
            raise ModelLoadError("4-bit loading needs bitsandbytes: pip install 'medtune[gpu]'") from e
        kwargs["quantization_config"] = bnb_4bit_config(torch_dtype)
        kwargs["device_map"] = {"": 0}
    local = ensure_local(source, revision)
    path, extra = _from_pretrained_args(source, local)
    tok = load_tokenizer(source, revision, padding_side)
    model = AutoModelForCausalLM.from_pretrained(path, **extra, **kwargs)
    if not load_in_4bit:
        model.to(dev)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return LoadedModel(model, tok, source, dev, torch_dtype, local)
