"""Eval test helpers: held-out MCQ records and training-run folders with random LoRA adapters."""

from __future__ import annotations

import json
import random
from pathlib import Path

from medtune.data.records import Answer, Record

CONDITIONS = ["Pneumonia", "Sepsis", "Asthma", "Stroke", "Meningitis", "Pulmonary embolism", "COPD", "Pneumothorax"]


def make_mcq(n: int, seed: int = 0, with_groups: bool = False) -> list[Record]:
    """n four-option MCQs in the record schema, like the synthetic held-out set."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        opts = rng.sample(CONDITIONS, 4)
        letter = "ABCD"[i % 4]
        md = {"subject": ["cardiology", "pulmonology"][i % 2]}
        if with_groups:
            md["group_id"] = f"case{i // 2}"
        out.append(Record.create(
            source="synthetic", task="mcq", question=f"Case {i}: a patient with fever and dyspnea. Most likely diagnosis?",
            options=dict(zip("ABCD", opts)), answer=Answer(letter=letter), metadata=md,
        ))
    return out


def make_run(tiny_model_dir: Path, out: Path, seed: int) -> Path:
    """A training-run folder (manifest.json + adapter/) holding a random, non-zero LoRA adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    cfg = LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(base, cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.5)
    model.save_pretrained(out / "adapter")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out / "adapter")
    (out / "manifest.json").write_text(json.dumps({"base_model": str(tiny_model_dir), "method": "lora"}))
    return out
