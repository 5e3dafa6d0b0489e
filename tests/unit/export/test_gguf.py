"""HF -> GGUF converter: metadata, tokenizer, permutation (via transformers' GGUF loader), errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from medtune.export import ExportError, convert_hf_to_gguf


def _fields(path):
    from gguf import GGUFReader

    r = GGUFReader(path)
    return r, {k: f for k, f in r.fields.items()}


def test_metadata_and_tokenizer(tiny_f16, tiny_merged):
    from transformers import AutoTokenizer

    reader, fields = _fields(tiny_f16)
    tok = AutoTokenizer.from_pretrained(tiny_merged)
    assert fields["general.architecture"].contents() == "llama"
    assert fields["medtune.run_id"].contents() == "tiny-test-1"
    assert fields["medtune.base_model"].contents() == str(json.loads((tiny_merged / "medtune_export.json").read_text())["base_model"])
    assert len(fields["medtune.data_manifest_sha256"].contents()) == 64
    assert fields["medtune.version"].contents() == "0.1.0"
    assert fields["tokenizer.chat_template"].contents() == tok.chat_template
    assert fields["tokenizer.ggml.model"].contents() == "gpt2"
    assert fields["tokenizer.ggml.pre"].contents() == "gpt-2"
    tokens = fields["tokenizer.ggml.tokens"].contents()
    assert len(tokens) == len(tok) and tokens[tok.eos_token_id] == "<|im_end|>"
    assert fields["tokenizer.ggml.token_type"].contents()[tok.eos_token_id] == 3  # CONTROL
    assert len(fields["tokenizer.ggml.merges"].contents()) > 100
    assert fields["tokenizer.ggml.eos_token_id"].contents() == tok.eos_token_id
    assert fields["tokenizer.ggml.add_bos_token"].contents() is False  # this tokenizer adds no BOS
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "F16" and types["blk.0.attn_norm.weight"] == "F32"
    assert "output.weight" not in types  # tied embeddings: llama.cpp reuses token_embd


def test_transformers_loads_f16_back(tiny_f16, tiny_merged):
    """transformers un-permutes q/k when reading llama GGUFs: a wrong permutation shows up here."""
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[5, 17, 42, 99, 120, 7, 33]])
    back = AutoModelForCausalLM.from_pretrained(tiny_f16.parent, gguf_file=tiny_f16.name, dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(tiny_merged, dtype=torch.float32)
    with torch.no_grad():
        diff = (back(ids).logits - ref(ids).logits).abs().max().item()
    assert diff < 5e-3  # F16 weight rounding only


def test_q8_0_quantizes_2d_weights(tiny_merged, tmp_path):
    from gguf import GGUFReader

    out = tmp_path / "q8.gguf"
    summary = convert_hf_to_gguf(tiny_merged, out, "q8_0")
    types = {t.name: t.tensor_type.name for t in GGUFReader(out).tensors}
    assert types["blk.1.ffn_down.weight"] == "Q8_0" and types["output_norm.weight"] == "F32"
    assert summary["bytes"] < (tiny_merged / "model.safetensors").stat().st_size / 2.5  # fp32 -> ~8.5 bits per weight


def test_unsupported_architecture_is_named(tiny_merged, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(tiny_merged, model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["architectures"] = ["GPT2LMHeadModel"]
    (model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match=r"config.json: architecture GPT2LMHeadModel is not supported") as err:
        convert_hf_to_gguf(model, tmp_path / "x.gguf")
    assert "\n" not in str(err.value)  # one line, listing every supported class
    for supported in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "PhiForCausalLM"):
        assert supported in str(err.value)
    assert not (tmp_path / "x.gguf").exists() and not list(tmp_path.glob(".x.gguf*"))


def test_unknown_outtype(tiny_merged, tmp_path):
    with pytest.raises(ExportError, match="K-quants go through llama.cpp"):
        convert_hf_to_gguf(tiny_merged, tmp_path / "x.gguf", "q4_k_m")


def test_llama3_rope_factors_shape_and_range():
    from medtune.export.gguf import HParams, llama3_rope_factors

    hp = HParams(arch="llama", permute_qk=True, n_layer=1, n_embd=64, n_ff=128, n_head=1, n_head_kv=1, head_dim=64,
                 n_ctx=131072, n_vocab=10, norm_eps=1e-5, rope_theta=500000.0, tied=True, rope_dim=64,
                 rope={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 8192})
    f = llama3_rope_factors(hp)
    assert f.shape == (32,) and f[0] == 1.0 and f[-1] == 32.0 and np.all(np.diff(f) >= 0)
