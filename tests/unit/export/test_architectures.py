"""Every architecture the presets ship round-trips through llama.cpp (F16), built tiny in the test.

llama ropes adjacent pairs (q/k permuted); Mistral is written as GGUF `llama`; qwen2 has q/k/v
biases; qwen3 has per-head q/k RMSNorms and a head_dim of its own; phi2 has LayerNorms with
biases, a partial rotary embedding, biased projections and a parallel attention/MLP block;
Llama 3.1 rope scaling goes through the rope_freqs tensor. A wrong choice in any of these moves
llama.cpp's logits by far more than F16 rounding, which the verification's tie band and the
perplexity bound below catch (test_a_conversion_bug_is_caught proves it for one).
"""

from __future__ import annotations

import pytest

# preset `architecture` (an HF model_type) or test variant -> what the tiny model is built from
KINDS = {
    "llama": ("llama", {}),
    "llama3-rope": ("llama", {"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                                  "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                  "original_max_position_embeddings": 64}}),
    "mistral": ("mistral", {"sliding_window": None}),
    "qwen2": ("qwen2", {}),
    "qwen3": ("qwen3", {"head_dim": 24}),  # Qwen3 decouples head_dim from hidden/heads (128 vs 64 in 0.6B)
    "phi": ("phi", {"partial_rotary_factor": 0.5}),  # Phi-2 rotates 32 of its 80 head dimensions
}
# Tied heads where the real family ties them, plus phi (Phi-2 itself is untied, as qwen2 and mistral
# here): llama.cpp's phi2 needs output.weight, which the converter then writes from the embeddings.
TIED = ("llama", "llama3-rope", "qwen3", "phi")
GGUF_ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "phi": "phi2"}
# Relative perplexity change F16 rounding may cause here. Measured on these models: <= 5e-5
# (1.4e-4 for the trained tiny model; 1.1e-3 for a llama variant with every weight, norms
# included, scaled by 4; 1.7e-4 for qwen2 from rounding its weights alone, emulated in torch).
# The broken permutation below moves it by 2.2e-2.
F16_PPL_REL = 2e-3


def build_tiny(kind: str, out, tok_dir):
    """A 2-layer random model of ``kind`` with the tiny tokenizer, weights scaled for peaked logits."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    model_type, extra = KINDS[kind]
    tok = AutoTokenizer.from_pretrained(tok_dir)
    cfg = AutoConfig.for_model(model_type, vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                               max_position_embeddings=1024, bos_token_id=tok.bos_token_id,
                               eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                               tie_word_embeddings=kind in TIED, **extra)
    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:  # non-trivial biases and norm gains, so a dropped
                p.normal_(1.0 if "norm.weight" in name else 0.0, 0.5)  # or swapped one would show
            else:
                p.mul_(4.0)  # sharper logits than the default init: fewer near-ties
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_every_preset_architecture_is_covered():
    """A preset family without a converter entry and a round-trip test here fails this test."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from medtune.export.gguf import ARCHITECTURES
    from medtune.models.registry import load_presets

    families = {p.architecture for p in load_presets().values()} | {"mistral"}
    assert families <= set(KINDS), families - set(KINDS)
    assert {MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[f] for f in families} <= set(ARCHITECTURES)


@pytest.mark.parametrize("kind", list(KINDS))
def test_architecture_round_trip(kind, tiny_model_dir, tmp_path):
    from gguf import GGUFReader

    from medtune.export import convert_hf_to_gguf
    from medtune.export.verify import verify_ggufs

    model_dir = build_tiny(kind, tmp_path / kind, tiny_model_dir)
    out = tmp_path / f"{kind}.gguf"
    summary = convert_hf_to_gguf(model_dir, out, "f16")
    names = {t.name for t in GGUFReader(out).tensors}
    assert summary["arch"] == GGUF_ARCH[KINDS[kind][0]]
    assert ("blk.0.attn_q.bias" in names) == (kind in ("qwen2", "phi"))
    assert ("blk.0.attn_q_norm.weight" in names) == (kind == "qwen3")
    assert ("rope_freqs.weight" in names) == (kind == "llama3-rope")
    assert ("output.weight" in names) == (kind not in TIED or kind == "phi")
    (row,) = verify_ggufs([out], model_dir, n_tokens=16)
    assert row["passed"] is True, row  # no flip outside F16's tie band
    assert row["agreement"] >= 0.9, row
    assert abs(row["ppl_delta"]) <= F16_PPL_REL * row["ppl_hf"], row
    assert row["chat_template_roundtrip"] and row["tokenizer_roundtrip"], row


def test_a_conversion_bug_is_caught(tiny_model_dir, tmp_path, monkeypatch):
    """Skipping llama's rotary permutation (a plausible bug) fails the same checks."""
    from medtune.export import convert_hf_to_gguf, gguf
    from medtune.export.verify import verify_ggufs

    model_dir = build_tiny("llama", tmp_path / "llama", tiny_model_dir)
    monkeypatch.setattr(gguf, "permute_rotary", lambda w, n_head: w)
    out = tmp_path / "broken.gguf"
    convert_hf_to_gguf(model_dir, out, "f16")
    (row,) = verify_ggufs([out], model_dir, n_tokens=16)
    assert row["passed"] is False and row["max_flip_margin"] > row["tie_band"], row
    assert abs(row["ppl_delta"]) > F16_PPL_REL * row["ppl_hf"], row

