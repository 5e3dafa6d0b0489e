import time

import pytest
import torch

from medtune.models.load import load_model, load_tokenizer, pick_dtype
from medtune.models.registry import load_presets
from medtune.models.source import ModelLoadError, resolve_source

REQUIRED = {
    "smollm2-135m", "llama-3.2-1b-instruct", "llama-3.2-3b-instruct", "qwen2.5-0.5b-instruct",
    "qwen2.5-1.5b-instruct", "qwen2.5-7b-instruct", "phi-2", "deepseek-r1-distill-llama-8b",
    "deepseek-r1-distill-qwen-1.5b", "deepseek-r1-distill-qwen-7b", "qwen3-0.6b", "qwen3-32b",
}


def test_presets_cover_the_required_models():
    presets = load_presets()
    assert REQUIRED <= set(presets)
    assert presets["phi-2"].lora_target_modules == ["Wqkv", "fc1", "fc2"]
    for name, p in presets.items():
        expected = "think" if ("r1-distill" in name or name.startswith("qwen3")) else None
        if expected:
            assert p.reasoning_format == expected, name
        assert p.config.hidden_size % p.config.num_attention_heads == 0 or p.config.head_dim, name


def test_resolve_kinds(tiny_model_dir, tmp_path):
    assert resolve_source("smollm2-135m").kind == "embedded"
    assert resolve_source(str(tiny_model_dir)).kind == "local_dir"
    assert resolve_source("some-org/some-model").kind == "hf_id"
    with pytest.raises(ModelLoadError):
        resolve_source(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelLoadError):
        resolve_source("not a model")


def test_offline_unknown_hf_id_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError) as exc:
        load_model("medtune-test/does-not-exist-123")
    elapsed = time.perf_counter() - t0
    assert elapsed < 15, elapsed
    msg = str(exc.value)
    assert "medtune-test/does-not-exist-123" in msg and "model.base=" in msg


def test_local_dir_loads_with_chat_template(tiny_model_dir):
    from medtune.models.precision import cpu_has_native_bf16

    lm = load_model(str(tiny_model_dir))
    if torch.cuda.is_available():  # `auto` follows the hardware
        device, expected = "cuda", "torch.bfloat16" if torch.cuda.is_bf16_supported() else "torch.float16"
    else:
        device, expected = "cpu", "torch.bfloat16" if cpu_has_native_bf16() else "torch.float32"
    assert lm.device == device and str(lm.dtype) == expected and lm.model.dtype == lm.dtype
    assert lm.tokenizer.pad_token is not None and lm.tokenizer.chat_template


def test_four_bit_on_cpu_is_a_clear_error(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="CUDA"):
        load_model(str(tiny_model_dir), device="cpu", load_in_4bit=True)


def test_dtype_by_device():
    import torch

    # `auto` on a CPU depends on its bf16 instructions: tests/unit/models/test_precision.py
    assert pick_dtype("cpu", "float32") == torch.float32
    assert pick_dtype("cpu", "bfloat16") == torch.bfloat16
    assert pick_dtype("mps") == torch.float32


def test_preset_template_fills_missing_chat_template(tiny_model_dir, tmp_path):
    import json
    import shutil

    d = tmp_path / "phi_like"
    shutil.copytree(tiny_model_dir, d)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    (d / "chat_template.jinja").unlink(missing_ok=True)
    cfgm = json.loads((d / "config.json").read_text())
    cfgm["_name_or_path"] = "microsoft/phi-2"
    (d / "config.json").write_text(json.dumps(cfgm))
    tok = load_tokenizer(str(d))
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "Instruct: hi\nOutput: "


@pytest.mark.slow
def test_embedded_second_load_is_fast(embedded_dir):
    t0 = time.perf_counter()
    lm = load_model("smollm2-135m")
    assert time.perf_counter() - t0 < 10
    assert lm.model.config.num_hidden_layers == 30
    assert (embedded_dir / "model.safetensors").is_file() and (embedded_dir / "COMPLETE").is_file()


@pytest.mark.gpu
def test_qlora_load_on_cuda(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), load_in_4bit=True)
    assert getattr(lm.model, "is_loaded_in_4bit", False)
