import pytest

from medtune.models.memory import (
    GIB,
    arch_from_hf_config,
    count_params,
    estimate_training_memory,
    recommend,
)
from medtune.models.registry import get_preset


def test_param_count_matches_real_model(tiny_model):
    arch = arch_from_hf_config(tiny_model.name_or_path)
    layers, emb, norms = count_params(arch)
    assert layers + emb + norms == sum(p.numel() for p in tiny_model.parameters())


def test_smollm2_preset_param_count():
    layers, emb, norms = count_params(get_preset("smollm2-135m").config)
    assert layers + emb + norms == 134_515_008  # counted on the materialized model


def test_estimate_monotone_and_methods():
    c = get_preset("llama-3.2-1b-instruct").config
    lora = estimate_training_memory(c, method="lora", seq_len=1024, batch=2, dtype="bf16", device="cuda")
    qlora = estimate_training_memory(c, method="qlora", seq_len=1024, batch=2, dtype="bf16", device="cuda")
    full = estimate_training_memory(c, method="full", seq_len=1024, batch=2, dtype="bf16", device="cuda")
    ckpt = estimate_training_memory(c, method="lora", seq_len=1024, batch=2, dtype="bf16", device="cuda", grad_ckpt=True)
    assert qlora.weights < lora.weights < lora.weights * 1.01 + full.optimizer
    assert full.total > lora.total > qlora.total
    assert ckpt.activations < lora.activations / 5
    longer = estimate_training_memory(c, method="lora", seq_len=2048, batch=2, dtype="bf16", device="cuda")
    assert longer.activations == pytest.approx(2 * lora.activations)


def test_recommend_prefers_bigger_models_with_more_memory():
    small = recommend(6, seq_len=1024)
    big = recommend(80, seq_len=1024)
    assert small and big
    params = {r.preset: r for r in big}
    assert "qwen3-32b" in params or "deepseek-r1-distill-llama-8b" in params
    assert all(r.estimate_gib <= 6 * 0.9 for r in small)


@pytest.mark.slow
def test_estimate_within_25_percent_of_measured_cpu_peak(embedded_dir):
    """A real LoRA step (AdamW, r=16 on all linears, b=2 x 256 tokens) of the embedded model."""
    from medtune.models.memprobe import measure_lora_step

    measured = measure_lora_step(str(embedded_dir), seq_len=256, batch=2, r=16)["peak_increase_bytes"]
    est = estimate_training_memory(arch_from_hf_config(embedded_dir), method="lora", seq_len=256, batch=2,
                                   lora_r=16, targets="all-linear", dtype="fp32", device="cpu").total
    ratio = est / measured
    print(f"estimate {est / GIB:.2f} GiB, measured {measured / GIB:.2f} GiB, ratio {ratio:.2f}")
    assert 0.75 <= ratio <= 1.25
