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


def test_an_existing_folder_wins_over_a_preset_of_the_same_name(tiny_model_dir, tmp_path, monkeypatch):
    """`model.base=qwen2.5-0.5b-instruct` with ./qwen2.5-0.5b-instruct on disk is that folder, as in transformers'
    from_pretrained, for training and for `medtune recommend` alike (once the preset won unless spelled ./NAME)."""
    import shutil

    from medtune.models.memory import arch_for

    monkeypatch.chdir(tmp_path)
    for name in ("qwen2.5-0.5b-instruct", "smollm2-135m"):
        shutil.copytree(tiny_model_dir, tmp_path / name)
        source = resolve_source(name)
        assert (source.kind, source.location) == ("local_dir", str(tmp_path / name))
        arch, _ = arch_for(name)
        assert arch.hidden_size == 32  # the folder's config, not the preset's
    assert resolve_source("qwen2.5-1.5b-instruct").kind == "hf_id"  # no such folder: the preset
    assert arch_for("qwen2.5-1.5b-instruct")[0].hidden_size == 1536


def test_a_relative_folder_resolves_to_an_absolute_location(tiny_model_dir, tmp_path, monkeypatch):
    """The manifest records the base's location: it must not depend on the directory training ran in."""
    import shutil

    shutil.copytree(tiny_model_dir, tmp_path / "base")
    monkeypatch.chdir(tmp_path)
    for spec in ("./base", "base"):
        assert resolve_source(spec).location == str((tmp_path / "base").resolve())


def test_only_medtunes_name_is_the_embedded_copy_and_it_has_no_revisions(tmp_path, monkeypatch):
    """The embedded copy is rebuilt from a 4-bit GGUF: the Hub id names the published checkpoint (offline: the clear
    offline error), and a revision with the embedded model is refused, never ignored."""
    import huggingface_hub.constants

    from medtune.models.source import ensure_local

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = resolve_source("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert (hub.kind, hub.location, hub.preset.name) == ("hf_id", "HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2-135m")
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        ensure_local(hub, revision="deadbeef")
    with pytest.raises(ModelLoadError, match="embedded model 'smollm2-135m' has no revisions"):
        ensure_local(resolve_source("smollm2-135m"), revision="deadbeef")


def test_a_revision_pins_the_snapshot_that_loads(hub_two_revisions):
    from medtune.models.source import ensure_local

    h = hub_two_revisions
    source = resolve_source(h["repo"])
    assert ensure_local(source, h["pinned"]) == h["pinned_dir"]
    assert ensure_local(source) == h["main_dir"]


def test_local_copies_of_known_models_keep_their_preset(tiny_model_dir, tmp_path):
    """transformers 5 writes no `_name_or_path`: a Hub cache snapshot is known by its path, the embedded model's
    folder by the marker medtune writes, so a Qwen3 copy still trains with <think> (not `## Thinking`)."""
    import json
    import shutil

    from tiny import build_hub_snapshot

    qwen3 = build_hub_snapshot(tmp_path / "hub", "Qwen/Qwen3-0.6B", "c" * 40, tiny_model_dir)
    assert resolve_source(str(qwen3)).preset.name == "qwen3-0.6b"
    assert resolve_source(str(qwen3)).reasoning_format == "think"
    embedded = tmp_path / "smol-copy"
    shutil.copytree(tiny_model_dir, embedded)
    (embedded / "COMPLETE").write_text(json.dumps({"preset": "smollm2-135m"}))
    assert resolve_source(str(embedded)).preset.name == "smollm2-135m"
    (embedded / "COMPLETE").write_text(json.dumps({"source": "/x/SmolLM2-135M-Instruct.Q4_1.gguf"}))  # older marker
    assert resolve_source(str(embedded)).preset.name == "smollm2-135m"
    merged = tmp_path / "merged"  # what `medtune export` merges from a run on the Qwen3 preset
    shutil.copytree(tiny_model_dir, merged)
    (merged / "medtune_export.json").write_text(json.dumps({"base_model": "qwen3-0.6b", "reasoning_format": "think"}))
    assert resolve_source(str(merged)).reasoning_format == "think"
    assert resolve_source(str(tiny_model_dir)).preset is None


def test_merged_folders_and_gguf_files_answer_in_the_format_their_run_trained_with(tiny_model_dir, tmp_path):
    """The format medtune recorded wins over the base preset's: a merged Qwen3 run trained `plain` is asked plain;
    a GGUF's ``medtune.reasoning_format`` is read; a file without one falls back (preset, else sections)."""
    import json
    import shutil

    from tiny import write_gguf_metadata

    merged = tmp_path / "merged"
    shutil.copytree(tiny_model_dir, merged)
    (merged / "medtune_export.json").write_text(json.dumps({"base_model": "qwen3-0.6b", "reasoning_format": "plain"}))
    source = resolve_source(str(merged))
    assert source.preset.name == "qwen3-0.6b" and source.reasoning_format == "plain"
    for fmt in ("think", None):
        path = tmp_path / f"m-{fmt}.gguf"
        write_gguf_metadata(path, {"medtune.reasoning_format": fmt} if fmt else {})
        assert resolve_source(str(path)).reasoning_format == (fmt or "plain")  # as eval and serve ask a GGUF
