"""bf16 training keeps the loss of fp32 training, and the CPU LoRA speed-ups keep PEFT's semantics.

Tolerance (tiny model, 30 steps, same seed and data): every logged bf16 train loss within 1% of
the fp32 one, and the final eval loss within 1% (measured: 1e-4 relative). bf16 rounds matmul
inputs to 8 mantissa bits (~0.4% per product); the fp32 master weights and optimizer states keep
the updates exact, so the curves stay together.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from medtune.config import load_config
from medtune.train import train
from medtune.train.cpu_lora import WordDropout, tune_lora_for_cpu

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))
from train_helpers import write_records  # noqa: E402


def test_word_dropout_matches_dropout_statistics():
    drop = WordDropout(0.05)
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    y = drop(x)
    dropped = float((y == 0).float().mean())
    assert abs(dropped - 0.05) < 3 * (0.05 * 0.95 / 1e6) ** 0.5 + 1e-4  # binomial: within 3 sigma
    assert float(y.mean()) == pytest.approx(1.0, abs=2e-3)  # inverted dropout keeps the expectation
    values = torch.unique(y).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(drop.scale)
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # torch's seeded generator: reproducible
    drop.eval()
    assert drop(x) is x
    xb = torch.randn(64, 32, dtype=torch.bfloat16, requires_grad=True)
    drop.train()
    out = drop(xb)
    out.sum().backward()
    kept = xb.grad != 0  # gradient flows exactly where the input was kept (an input that is 0 stays 0 either way)
    assert out.dtype == torch.bfloat16 and 0 < float(kept.float().mean()) < 1
    assert not out[~kept].any() and torch.equal(out[kept], (xb[kept] * drop.scale).to(torch.bfloat16))


def test_tune_lora_for_cpu_swaps_dropout_and_keeps_eval_outputs(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, target_modules="all-linear"))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    ids = torch.tensor([[1, 5, 9, 12, 7]])
    model.eval()
    with torch.no_grad():
        before = model(ids).logits
    layers = tune_lora_for_cpu(model, "bf16")
    assert layers == 2 * 7  # 2 layers x 7 projections
    lora = [m for m in model.modules() if hasattr(m, "lora_dropout")]
    assert all(isinstance(m.lora_dropout["default"], WordDropout) and not m.cast_input_dtype_enabled for m in lora)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, before)


def test_bf16_training_loss_tracks_fp32(tmp_path, tiny_model_dir):
    data = write_records(tmp_path / "records.jsonl", n=48)
    common = [f"model.base={tiny_model_dir}", "data.max_length=192", "data.val_fraction=0.15", "train.batch_size=2",
              "train.lora.r=4", "train.lora.alpha=8", "train.logging_steps=5", "train.max_steps=30",
              "train.learning_rate=0.01", "train.eval_steps=30"]
    runs = {}
    for precision in ("fp32", "bf16"):
        res = train(load_config(None, [*common, f"train.precision={precision}"]), data, tmp_path / precision, progress=False)
        rows = [json.loads(line) for line in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
        runs[precision] = (res, [r["train_loss"] for r in rows if "train_loss" in r])
    (fp32, curve32), (bf16, curve16) = runs["fp32"], runs["bf16"]
    assert bf16.manifest["precision"]["compute"] == "bf16" and bf16.manifest["precision"]["weights"] == "bfloat16"
    assert fp32.manifest["precision"]["compute"] == "fp32" and fp32.manifest["precision"]["weights"] == "float32"
    assert fp32.final_eval_loss < fp32.first_eval_loss - 0.15  # it learns, so tracking means something
    assert len(curve16) == len(curve32) == 6
    for a, b in zip(curve16, curve32):
        assert a == pytest.approx(b, rel=0.01), (curve16, curve32)
    assert bf16.final_eval_loss == pytest.approx(fp32.final_eval_loss, rel=0.01)
    print(f"\nfp32 {curve32} eval {fp32.final_eval_loss:.4f}\nbf16 {curve16} eval {bf16.final_eval_loss:.4f}")
