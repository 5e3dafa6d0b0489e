import pytest

from medtune.models.memory import (
    GIB,
    arch_from_hf_config,
    count_params,
    estimate_training_memory,
    recommend,
    settings_that_fit,
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
                                   lora_r=16, targets="all-linear", dtype="fp32", device="cpu", trainer="plain").total
    ratio = est / measured
    print(f"estimate {est / GIB:.2f} GiB, measured {measured / GIB:.2f} GiB, ratio {ratio:.2f}")
    assert 0.75 <= ratio <= 1.25


R1_RECIPE = {"method": "qlora", "seq_len": 2048, "batch": 2, "grad_ckpt": True, "optimizer": "adamw_8bit", "lora_r": 16,
             "dtype": "bf16", "device": "cuda", "packing": False}


def test_medtune_trainer_keeps_logits_at_loss_positions_only():
    c = get_preset("deepseek-r1-distill-llama-8b").config
    plain = estimate_training_memory(c, **{**R1_RECIPE, "optimizer": "adamw"}, trainer="plain")
    ours = estimate_training_memory(c, **R1_RECIPE)
    half = estimate_training_memory(c, **R1_RECIPE, loss_share=0.5)
    fused = estimate_training_memory(c, **R1_RECIPE, fused_ce=True)
    assert round(plain.total / GIB, 2) == 14.57  # the figure issue 17 quotes for the plain loop
    assert half.logits == pytest.approx(ours.logits / 2, rel=1e-3)
    assert fused.logits < ours.logits / 20  # liger: one chunk of logits at a time
    # QLoRA in medtune: 4-bit layers plus bf16 embeddings and LM head (1.05B params), norms fp32
    layers, emb, norms = count_params(c)
    assert ours.weights == pytest.approx(layers * 4.127 / 8 + emb * 2 + norms * 4)


def test_cpu_packing_runs_one_row_and_bf16_halves_activations():
    c = get_preset("smollm2-135m").config
    packed = estimate_training_memory(c, seq_len=512, batch=4, dtype="fp32", device="cpu")
    padded = estimate_training_memory(c, seq_len=512, batch=4, dtype="fp32", device="cpu", packing=False)
    bf16 = estimate_training_memory(c, seq_len=512, batch=4, dtype="bf16", device="cpu")
    assert padded.activations == pytest.approx(4 * packed.activations)
    assert bf16.activations < 0.6 * packed.activations and bf16.weights == pytest.approx(packed.weights / 2)


def test_what_would_make_a_recipe_fit():
    c = get_preset("llama-3.2-1b-instruct").config
    settings = {"method": "lora", "seq_len": 1024, "batch": 2, "dtype": "bf16", "device": "cuda", "packing": True}
    assert estimate_training_memory(c, **settings).total / GIB > 8 * 0.9
    options = dict(settings_that_fit(c, 8, settings))
    assert options and all(gib <= 8 * 0.9 for gib in options.values())
    assert any("grad-ckpt" in k for k in options) and any("--batch 1" in k for k in options)
    r1 = get_preset("deepseek-r1-distill-llama-8b").config
    assert settings_that_fit(r1, 6, R1_RECIPE) == []  # weights alone exceed 6 GiB's usable 5.4


def test_recommend_cli_explains_the_r1_6gb_recipe():
    from typer.testing import CliRunner

    from medtune.cli.main import app

    out = CliRunner().invoke(app, ["recommend", "--vram", "6", "--model", "deepseek-r1-distill-llama-8b", "--method", "qlora",
                                   "--seq-len", "2048", "--batch", "2", "--grad-ckpt", "--optimizer", "adamw_8bit",
                                   "--no-packing", "--no-fused-ce"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "does NOT fit" in out.output and "No single setting makes it fit" in out.output and "5.31 GiB" in out.output
    out = CliRunner().invoke(app, ["recommend", "--vram", "8", "--model", "llama-3.2-1b-instruct", "--seq-len", "1024",
                                   "--batch", "2", "--no-fused-ce"], env={"COLUMNS": "200"})
    assert "It would fit with one change" in out.output, out.output


@pytest.mark.slow
def test_estimate_within_25_percent_of_medtune_train_peak(embedded_dir, tmp_path):
    """`medtune train` itself (bf16 where the CPU has it, packing, 512-token rows, 2 steps) vs the estimate."""
    import sys
    from pathlib import Path

    from medtune.models.memprobe import measure_train_peak

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
    from train_throughput import TARGETS, make_records

    records = tmp_path / "records.jsonl"
    make_records(records, 300, 0, 512, "smollm2-135m")
    overrides = ["train.max_steps=2", "train.batch_size=2", "data.max_length=512", "data.val_fraction=0.0",
                 "train.lora.r=16", f"train.lora.target_modules=[{','.join(TARGETS)}]"]
    m = measure_train_peak(str(records), overrides, str(tmp_path / "run"))
    est = estimate_training_memory(arch_from_hf_config(embedded_dir), seq_len=512, batch=2, lora_r=16, targets="all-linear",
                                   dtype=m["precision"]["compute"], device="cpu", loss_share=m["loss_share"]).total
    ratio = est / m["peak_increase_bytes"]
    print(f"{m['precision']['compute']}: estimate {est / GIB:.2f} GiB, measured {m['peak_increase_bytes'] / GIB:.2f} GiB, ratio {ratio:.2f}")
    assert 0.75 <= ratio <= 1.25


def test_recommend_without_a_model_takes_method_and_refuses_the_flags_it_would_ignore():
    """Without --model the search picks batch, checkpointing and optimizer per preset: a given value would have been
    dropped silently. --method narrows the search (the README's `medtune recommend --vram 8 --method qlora`)."""
    from typer.testing import CliRunner

    from medtune.cli.main import app

    assert {r.method for r in recommend(8, seq_len=1024, method="qlora")} == {"qlora"}
    assert {r.method for r in recommend(8, seq_len=1024, method="full")} == {"full"}
    out = CliRunner().invoke(app, ["recommend", "--vram", "8", "--method", "qlora"])
    assert out.exit_code == 0 and "with qlora" in out.output
    for flags in (["--batch", "8"], ["--grad-ckpt"], ["--optimizer", "adafactor"], ["--trainer", "plain"], ["--no-packing"]):
        out = CliRunner().invoke(app, ["recommend", "--vram", "8", *flags])
        assert out.exit_code == 2 and "apply with --model" in out.output, (flags, out.output)
    for flags, said in ((["--device", "gpu"], "--device must be cuda or cpu"),
                        (["--model", "smollm2-135m", "--optimizer", "adamw_9bit"], "--optimizer must be one of"),
                        (["--method", "qlora", "--device", "cpu"], "needs CUDA")):
        out = CliRunner().invoke(app, ["recommend", "--vram", "8", *flags])
        assert out.exit_code == 2 and said in out.output, (flags, out.output)


LAYOUT_CONFIGS = {  # tiny models of every layout, as test_architectures builds them (Qwen3: its own head_dim)
    "llama": {"tie_word_embeddings": True}, "mistral": {"sliding_window": None}, "qwen2": {},
    "qwen3": {"head_dim": 24, "tie_word_embeddings": True}, "phi": {"partial_rotary_factor": 0.5},
}


def _tiny(model_type: str, out):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(model_type, vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                               **LAYOUT_CONFIGS[model_type])
    cfg.save_pretrained(out)
    return AutoModelForCausalLM.from_config(cfg)


@pytest.mark.parametrize("model_type", list(LAYOUT_CONFIGS))
def test_every_layout_counts_the_real_parameters_and_what_peft_trains(model_type, tmp_path):
    """Parameters and LoRA-trainable parameters as transformers and PEFT count them, for each layout (phi-2 was
    counted as a Llama block: 3.62B instead of 2.78B, its fc1/fc2 adapters dropped)."""
    from peft import LoraConfig, get_peft_model

    from medtune.models.memory import arch_from_hf_config, known_layout
    from medtune.train.setup import resolve_target_modules

    model = _tiny(model_type, tmp_path)
    arch = arch_from_hf_config(tmp_path)
    assert arch.architecture == model_type and known_layout(arch)
    assert sum(count_params(arch)) == sum(p.numel() for p in model.parameters())
    preset = get_preset("phi-2") if model_type == "phi" else None
    for targets in ("all-linear", "preset", ["v_proj"]):
        est = estimate_training_memory(arch, method="lora", lora_r=8, targets=targets, preset=preset)
        modules = resolve_target_modules(model, targets, preset)
        peft = get_peft_model(_tiny(model_type, tmp_path / "again"), LoraConfig(r=8, target_modules=modules))
        trained = sum(p.numel() for p in peft.parameters() if p.requires_grad)
        assert est.trainable_params == trained, (targets, modules)


def test_presets_count_their_published_parameters():
    """Each preset's dimensions, read through its layout, give the parameter count it declares (within 1.5%)."""
    from medtune.models.registry import load_presets

    for name, p in load_presets().items():
        assert sum(count_params(p.config)) / 1e9 == pytest.approx(p.params_b, rel=0.015), name


def test_phi2_estimate_adapts_fc1_and_fc2():
    p = get_preset("phi-2")
    est = estimate_training_memory(p.config, preset=p, method="lora", lora_r=16, seq_len=1024, dtype="bf16", device="cuda")
    assert est.trainable_params == 32 * 16 * (3 * (2560 + 2560) + 2 * (2560 + 10240))  # Wqkv as q/k/v, fc1, fc2
    assert sum(count_params(p.config)) == 2_779_683_840  # by hand: embeddings, head + bias, 32 x (biased q/k/v/dense/fc1/fc2 + LayerNorm)


def test_unknown_architecture_is_estimated_as_llama_and_said(tmp_path):
    import json

    from typer.testing import CliRunner

    from medtune.cli.main import app

    _tiny("llama", tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "model_type": "olmo2"}))
    out = CliRunner().invoke(app, ["recommend", "--vram", "8", "--model", str(tmp_path), "--device", "cpu"],
                             env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "'olmo2' has no layer layout here: estimated as a Llama block" in out.output
