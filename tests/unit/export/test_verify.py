"""GGUF vs HF round trip in llama.cpp: F16 exact, Q8_0 >= 90%, K-quant made; missing llama.cpp = one line."""

from __future__ import annotations

import sys

import pytest

from medtune.export import LLAMA_CPP_HINT, LlamaCppMissing, convert_hf_to_gguf, quantize_gguf


@pytest.fixture(scope="module")
def rows(tiny_merged, tiny_f16, tmp_path_factory):
    from medtune.export.verify import verify_ggufs

    d = tmp_path_factory.mktemp("q")
    q8 = d / "tiny-q8_0.gguf"
    convert_hf_to_gguf(tiny_merged, q8, "q8_0")
    q4 = quantize_gguf(tiny_f16, d / "tiny-q4_k_m.gguf", "q4_k_m")
    return {r["type"]: r for r in verify_ggufs([tiny_f16, q8, q4], tiny_merged)}


def test_f16_matches_hf_greedy_exactly(rows):
    r = rows["F16"]
    assert r["n_tokens"] == 32 and r["exact_prompts"] == r["prompts"] == 4
    assert r["agreement"] == 1.0 and r["passed"] is True
    assert abs(r["ppl_delta"]) < 0.01 * r["ppl_hf"]


def test_q8_0_agreement(rows):
    r = rows["Q8_0"]
    assert r["agreement"] >= 0.9 and r["passed"] is True


def test_chat_template_and_tokenizer_round_trip(rows):
    for r in rows.values():
        assert r["chat_template_roundtrip"] and r["tokenizer_roundtrip"], r


def test_k_quant_is_reported_not_judged(rows):
    r = rows["Q4_K_M"]
    assert r["passed"] is None and r["bytes"] < rows["F16"]["bytes"]


def test_verify_fails_on_a_wrong_model(tiny_merged, tiny_model_dir, tmp_path):
    """The check can fail: the *base* model's GGUF does not reproduce the merged model."""
    from medtune.export.verify import verify_ggufs

    base = tmp_path / "base-f16.gguf"
    convert_hf_to_gguf(tiny_model_dir, base, "f16")
    (row,) = verify_ggufs([base], tiny_merged)
    assert row["passed"] is False and row["exact_prompts"] < row["prompts"]


def test_missing_llama_cpp_is_one_line(monkeypatch, tiny_f16, tmp_path):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` raise ImportError
    with pytest.raises(LlamaCppMissing) as err:
        quantize_gguf(tiny_f16, tmp_path / "x.gguf", "q4_k_m")
    msg = str(err.value)
    assert "\n" not in msg and "pip install 'medtune[gguf]'" in msg and LLAMA_CPP_HINT in msg
