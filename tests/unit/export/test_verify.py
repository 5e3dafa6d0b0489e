"""GGUF vs HF round trip in llama.cpp: F16 exact, Q8_0 within its tie band, K-quant reported; near-ties
pass and real differences fail; missing llama.cpp = one line."""

from __future__ import annotations

import sys
from pathlib import Path

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
    assert r["agreement"] == 1.0 and r["flips"] == 0 and r["passed"] is True
    assert r["logit_err"] < r["tie_band"] / 2  # each logit moved less than the measured bound (band = 2 bounds)
    assert abs(r["ppl_delta"]) < 0.01 * r["ppl_hf"]


def test_q8_0_within_its_tie_band(rows):
    r = rows["Q8_0"]
    assert r["agreement"] >= 0.9 and r["passed"] is True
    assert r["max_flip_margin"] <= r["tie_band"] and r["tie_band"] > rows["F16"]["tie_band"]


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
    assert row["max_flip_margin"] > 10 * row["tie_band"], row  # a real difference, far outside the band


def _near_tie_model(merged: Path, out: Path) -> tuple[int, int]:
    """Copy of ``merged`` where token b's output row equals token a's up to a nudge F16 rounds away.

    In fp32 HF still prefers a over b by a hair wherever it prefers a; in the F16 GGUF the two rows
    are identical, the logits tie exactly, and llama.cpp's argmax (the first maximum) takes b < a.
    Every such step is a flip with a margin of about 1e-5 sigma: a correct file whose greedy text
    nevertheless differs from HF's.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medtune.export.verify import hf_reference

    ref = hf_reference(merged, n_tokens=8)
    a = next(t for seq in ref.greedy for t in seq if t > 0)  # a greedy token with a lower id below it
    b = a - 1
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    emb = model.get_output_embeddings().weight  # tied with the input embeddings in the tiny model
    with torch.no_grad():
        row = emb[a].half().float()  # exactly representable in F16
        k = int(row.abs().argmax())
        ulp = torch.finfo(torch.float16).eps * 2.0 ** torch.floor(torch.log2(row[k].abs()))
        nudged = row.clone()
        nudged[k] -= torch.sign(row[k]) * ulp / 4  # below half an F16 ulp: rounds back to row[k]
        emb[a], emb[b] = row, nudged
    assert torch.equal(emb[b].half(), emb[a].half()) and not torch.equal(emb[b], emb[a])
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(merged).save_pretrained(out)
    return a, b


def test_near_tie_flip_passes_but_is_reported(tiny_merged, tmp_path):
    from medtune.export.verify import verify_ggufs

    model_dir = tmp_path / "near-tie"
    _near_tie_model(tiny_merged, model_dir)
    gguf = tmp_path / "near-tie-f16.gguf"
    convert_hf_to_gguf(model_dir, gguf, "f16")
    (row,) = verify_ggufs([gguf], model_dir)
    assert row["exact_prompts"] < row["prompts"] and row["flips"] > 0, row  # exact-match would fail it
    assert 0 < row["max_flip_margin"] < 1e-3 < row["tie_band"], row
    assert row["passed"] is True, row


def test_missing_llama_cpp_is_one_line(monkeypatch, tiny_f16, tmp_path):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` raise ImportError
    with pytest.raises(LlamaCppMissing) as err:
        quantize_gguf(tiny_f16, tmp_path / "x.gguf", "q4_k_m")
    msg = str(err.value)
    assert "\n" not in msg and "pip install 'medtune[gguf]'" in msg and LLAMA_CPP_HINT in msg


def test_amx_build_refuses_to_verify_quantized_files_instead_of_crashing(tiny_merged, tmp_path, monkeypatch):
    """A llama.cpp with ggml's AMX kernels dies on Q8_0 matmuls (docs/export.md): say so, with the fix."""
    from medtune.export import ExportError, verify
    from medtune.export.common import AMX_REBUILD

    q8 = tmp_path / "tiny-q8_0.gguf"
    convert_hf_to_gguf(tiny_merged, q8, "q8_0")
    monkeypatch.setattr(verify, "llama_cpp_amx_problem", lambda: f"built with AMX kernels; rebuild: {AMX_REBUILD}")
    with pytest.raises(ExportError, match="cannot verify a Q8_0 file here") as err:
        verify.verify_ggufs([q8], tiny_merged, n_tokens=4)
    assert "-mno-amx-int8" in str(err.value) and "\n" not in str(err.value)


def test_reference_is_the_trained_model_for_a_bf16_base(bf16_run, tmp_path, caplog):
    """Verification takes the merged folder as the trained model. For a bf16 base that folder was the merge rounded
    to bf16 (0.016 sigma from the trained model here, most of the F16 tie band), so that rounding was never measured.
    Now the merge is stored in fp32 and the reference is the trained model (base + adapter, unmerged) to fp32
    arithmetic; verifying against a rounded merge says so."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from medtune.export import export_run
    from medtune.export.common import base_spec
    from medtune.export.merge import merge_adapter
    from medtune.export.verify import TIE_BANDS, hf_reference, verify_ggufs

    summary = export_run(bf16_run, tmp_path / "export", ["f16"], modelfile=False, model_card=False)
    ref = hf_reference(summary["merged"], n_tokens=8)
    base = AutoModelForCausalLM.from_pretrained(base_spec(bf16_run), dtype=torch.float32)
    trained = PeftModel.from_pretrained(base, bf16_run / "adapter").eval()
    for ids, greedy, rows in zip(ref.prompt_ids, ref.greedy, ref.greedy_logits):
        with torch.no_grad():
            want = trained(torch.tensor([ids + greedy[:-1]])).logits[0, len(ids) - 1 :].numpy()
        err = (abs(rows - want) / want.std(axis=1, keepdims=True)).max()
        assert err < TIE_BANDS["F16"] / 100, err  # the bf16-rounded merge: ~0.016 sigma
    (row,) = summary["verify"]
    assert row["reference_dtype"] == "float32" and row["passed"] is True, row

    rounded = merge_adapter(bf16_run, tmp_path / "rounded", keep_fp32=False)
    (row,) = verify_ggufs([summary["files"]["f16"]["path"]], rounded, n_tokens=8)
    assert row["reference_dtype"] == "bfloat16"
    assert any("already rounded" in r.getMessage() for r in caplog.records)
