"""Adapter setup: target modules from presets (with aliases), LoRA variants, optimizers, schedules."""

from __future__ import annotations

import pytest
from transformers import PhiConfig, PhiForCausalLM

from medtune.config import ConfigError
from medtune.config.sections.train import TrainSection
from medtune.models.registry import get_preset
from medtune.train.setup import apply_peft, build_optimizer, build_scheduler, resolve_target_modules


@pytest.fixture()
def tiny_phi():
    return PhiForCausalLM(PhiConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                    num_attention_heads=4, max_position_embeddings=64))


def test_phi2_preset_wqkv_alias_resolves_to_native_projections(tiny_phi):
    assert resolve_target_modules(tiny_phi, "preset", get_preset("phi-2")) == ["fc1", "fc2", "k_proj", "q_proj", "v_proj"]


def test_unknown_module_names_the_fix(tiny_model):
    with pytest.raises(ConfigError, match="'Wqkv' does not exist") as e:
        resolve_target_modules(tiny_model, ["Wqkv"], None)
    assert "q_proj" in str(e.value) and "all-linear" in str(e.value)
    assert resolve_target_modules(tiny_model, "preset", None) == "all-linear"


@pytest.mark.parametrize("method", ["lora", "dora", "rslora"])
def test_lora_variants(tiny_model, method):
    t = TrainSection(method=method, lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    peft_model = apply_peft(tiny_model, t, None)
    cfg = peft_model.peft_config["default"]
    assert cfg.use_dora == (method == "dora") and cfg.use_rslora == (method == "rslora")
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("q_proj" in n for n in trainable) and not any("k_proj" in n for n in trainable)


def test_full_finetuning_trains_every_weight(tiny_model):
    model = apply_peft(tiny_model, TrainSection(method="full"), None)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", ["adamw", "adafactor"])
def test_optimizers_and_warmup_schedule(tiny_model, name):
    t = TrainSection(optimizer=name, learning_rate=1e-3, warmup_ratio=0.1, scheduler="cosine", weight_decay=0.01)
    opt = build_optimizer(tiny_model, t)
    assert type(opt).__name__ == {"adamw": "AdamW", "adafactor": "Adafactor"}[name]
    assert {g["weight_decay"] for g in opt.param_groups} == {0.01, 0.0}
    sched = build_scheduler(opt, t, total_steps=100)
    lrs = []
    for _ in range(100):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and max(lrs) == pytest.approx(1e-3) and lrs.index(max(lrs)) == 10 and lrs[-1] < 1e-5
