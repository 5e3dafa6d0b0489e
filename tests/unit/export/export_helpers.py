"""Builders shared by export tests and bench/export_quants.py (a run folder with a LoRA adapter)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_run(base: str | Path, run: Path, r: int = 4, b_std: float = 0.3, seed: int = 1,
              base_spec: str | None = None) -> Path:
    """RUN/adapter (+ tokenizer), RUN/config.yaml, RUN/manifest.json, as the trainer writes them."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(base)
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=LINEAR))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * b_std)
    run.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(run / "adapter")
    tok.save_pretrained(run / "adapter")
    spec = base_spec or str(base)
    (run / "config.yaml").write_text(yaml.safe_dump({"name": "tiny-test", "model": {"base": spec},
                                                     "train": {"method": "lora", "lora": {"r": r, "alpha": 2 * r}},
                                                     "data": {"train_files": ["train.jsonl"]}}))
    (run / "manifest.json").write_text(json.dumps({
        "run_id": "tiny-test-1", "base_model": spec, "base_path": str(base), "reasoning_format": "think",
        "medtune_version": "0.1.0", "method": "lora", "data_manifest_sha256": {"train.jsonl": "ab" * 32},
    }))
    return run
