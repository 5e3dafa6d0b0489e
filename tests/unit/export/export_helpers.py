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

    torch.manual_seed(seed)  # PEFT draws lora_A from the global RNG: fix it so every run builds the same adapter
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



def train_tiny_base(src: str | Path, out: Path, steps: int = 60, seed: int = 0) -> Path:
    """The tiny random model after a few AdamW steps on the tiny corpus, saved to ``out``.

    A fresh random init has nearly flat next-token distributions: top-2 logits often differ
    by less than F16 rounding, so "identical greedy tokens" would be luck. A briefly trained
    model has the peaked distributions real models have; an exact-match failure then means
    a conversion bug, not a coin flip. (~5 s on CPU.)
    """
    import sys

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tiny import CORPUS

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).train()
    texts = sorted(set(CORPUS))
    batch = tok([tok.apply_chat_template([{"role": "user", "content": t}, {"role": "assistant", "content": t}],
                                         tokenize=False) for t in texts], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval().save_pretrained(out)
    tok.save_pretrained(out)
    GenerationConfig.from_pretrained(src).save_pretrained(out)
    return out
