"""Merge a PEFT adapter into its base model and save a standalone HF folder.

The merged folder is what every later export step reads: GGUF conversion, the
Ollama Modelfile, the model card, and verification, which takes it as the trained
model's stand-in. So it is merged in fp32 on CPU *and saved in fp32*, whatever dtype
the base was published in: the merged weights equal W + (alpha/r) * B @ A without
rounding through fp16/bf16. Saving a merge of a bf16 base in bf16 would round it
once more and move logits by 1.6-2.7e-2 sigma (measured on tiny Llamas, r=16,
B ~ N(0, 3e-3)): more than the F16 tie band, so an F16 GGUF made and verified from that
folder could pass while differing from the trained model by more than F16 may.
The cost is disk: 4 bytes per parameter (twice a bf16 base).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ..utils.io import atomic_dir, atomic_write_json, sha256_file
from .common import (
    PROVENANCE_FILE,
    ExportError,
    Provenance,
    base_spec,
    is_hf_folder,
    is_run_folder,
    read_provenance,
)

log = logging.getLogger(__name__)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def _load_tokenizer(run: Path, base: str):
    """The adapter's own tokenizer when training saved one (it may carry added tokens), else the base's."""
    from transformers import AutoTokenizer

    from ..models.load import load_tokenizer

    adapter = run / "adapter"
    if (adapter / "tokenizer_config.json").is_file() or (adapter / "tokenizer.json").is_file():
        tok = AutoTokenizer.from_pretrained(adapter)
        if not getattr(tok, "chat_template", None):
            tok.chat_template = load_tokenizer(base).chat_template
        return tok
    return load_tokenizer(base)


def stored_dtype(folder: Path) -> str:
    """The dtype an HF folder's config says its weights are stored in ("float32" when it does not say)."""
    import json

    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    return str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32")


def _base_dtype(base_dir: Path):
    """The torch dtype the base was published in (fp32 when its config does not say)."""
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(stored_dtype(base_dir), torch.float32)


def merge_adapter(run: Path, out: Path, keep_fp32: bool = True) -> Path:
    """Load base (fp32, CPU) + RUN/adapter, merge_and_unload, save safetensors (fp32) + tokenizer + generation config.

    ``keep_fp32=False`` saves in the base's published dtype instead (half the disk for a bf16 base) and so
    rounds the merge (see the module docstring); export never asks for it.
    """
    import torch
    from peft import PeftModel

    from ..models.load import load_model
    from ..train.load import merge_init_adapters

    spec = base_spec(run)
    loaded = load_model(spec, device="cpu", dtype="float32")
    tok = _load_tokenizer(run, spec)
    model = loaded.model
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        # Training added tokens (and saved resized embeddings in the adapter); match them first.
        model.resize_token_embeddings(len(tok))
    with torch.no_grad():
        model = merge_init_adapters(model, run)  # a second-stage run (GRPO/DPO/ORPO) builds on its SFT adapter
        peft_model = PeftModel.from_pretrained(model, run / "adapter", torch_device="cpu")
        merged = peft_model.merge_and_unload()
    if not keep_fp32 and loaded.path.is_dir():
        merged = merged.to(_base_dtype(loaded.path))
    gen = merged.generation_config
    gen.eos_token_id = gen.eos_token_id if gen.eos_token_id is not None else tok.eos_token_id
    gen.pad_token_id = tok.pad_token_id
    prov = read_provenance(run)
    prov.adapter_sha256 = sha256_file(run / "adapter" / "adapter_model.safetensors") \
        if (run / "adapter" / "adapter_model.safetensors").is_file() else None
    if prov.base_model == "unknown":
        prov.base_model = spec
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        gen.save_pretrained(tmp)
        atomic_write_json(tmp / PROVENANCE_FILE, prov.to_dict())
    return out


def _copy_full_model(src: Path, out: Path, prov: Provenance) -> Path:
    """Full fine-tuning already produced a standalone folder: copy it with provenance."""
    with atomic_dir(out) as tmp:
        for item in src.iterdir():
            if item.is_file():
                shutil.copy2(item, tmp / item.name)
        atomic_write_json(tmp / PROVENANCE_FILE, prov.to_dict())
    return out


def merge_run(run: str | Path, out: str | Path | None = None) -> Path:
    """Turn a training run into a standalone HF folder (default RUN/merged) and return its path.

    Accepts RUN/adapter (LoRA/DoRA: merged), RUN/model (full fine-tune: copied), or an
    already merged HF folder (returned unchanged).
    """
    run = Path(run)
    if not run.exists():
        raise ExportError(f"{run}: no such run folder")
    if is_hf_folder(run) and not is_run_folder(run):
        return run
    if not is_run_folder(run):
        raise ExportError(
            f"{run}: not a run folder (expected adapter/adapter_config.json or model/config.json) "
            "and not an HF model folder (config.json + *.safetensors)"
        )
    target = Path(out) if out else run / "merged"
    if (run / "adapter" / "adapter_config.json").is_file():
        if not (run / "adapter" / "adapter_model.safetensors").is_file() and not (run / "adapter" / "adapter_model.bin").is_file():
            raise ExportError(f"{run / 'adapter'}: adapter_config.json has no adapter_model.safetensors next to it")
        log.info("merging %s into %s", run / "adapter", target)
        return merge_adapter(run, target)
    return _copy_full_model(run / "model", target, read_provenance(run))
