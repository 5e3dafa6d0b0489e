"""Slow: a tuned embedded SmolLM2 (LoRA on every linear layer) through export_run, checked in llama.cpp.

F16 and Q8_0: every greedy token llama.cpp chooses differently from the merged HF model is a
near-tie inside the type's tie band (30 layers of F16 rounding do flip near-ties: SmolLM2's own F16
file diverges on 2 of 4 prompts at margins of ~0.003 sigma); chat template and tokenizer round trip;
transformers loads the F16 GGUF back (its GGUF reader un-permutes q/k, so a wrong
rotary permutation would show up as different logits).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "export"))
from export_helpers import build_run  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(embedded_dir, tmp_path_factory):
    from medtune.export import export_run

    run = build_run(embedded_dir, tmp_path_factory.mktemp("smol") / "run", r=8, b_std=0.02, base_spec="smollm2-135m")
    return export_run(run, run / "export", ["f16", "q8_0"], verify=True)


def test_f16_and_q8_0_round_trip(exported):
    rows = {r["type"]: r for r in exported["verify"]}
    f16, q8 = rows["F16"], rows["Q8_0"]
    assert f16["n_tokens"] == 32 and f16["prompts"] == 4 and f16["agreement"] >= 0.97, f16
    assert f16["max_flip_margin"] <= f16["tie_band"] and f16["logit_err"] < f16["tie_band"], f16
    assert q8["agreement"] >= 0.9 and q8["max_flip_margin"] <= q8["tie_band"], q8
    for r in rows.values():
        assert r["chat_template_roundtrip"] and r["tokenizer_roundtrip"], r
        assert r["passed"] is True
    assert exported["passed"] is True and exported["verify_status"] == "passed"


def test_transformers_reads_f16_back(exported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    f16 = Path(exported["files"]["f16"]["path"])
    merged = Path(exported["merged"])
    tok = AutoTokenizer.from_pretrained(merged)
    ids = tok("A 58-year-old man has crushing chest pain; the first test is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ref = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)(ids).logits
        back = AutoModelForCausalLM.from_pretrained(f16.parent, gguf_file=f16.name, dtype=torch.float32)(ids).logits
    assert torch.equal(ref.argmax(-1), back.argmax(-1))
    assert (ref - back).abs().max().item() < 0.1  # F16 weight rounding only


def test_modelfile_and_card(exported):
    from medtune import DISCLAIMER

    text = Path(exported["modelfile"]).read_text()
    assert "FROM ./medtune-tiny-test-1-q8_0.gguf" in text and '{{ if eq .Role "user" }}' not in text
    assert '<|im_start|>user\n{{ .Content }}<|im_end|>\n' in text and DISCLAIMER in text
    card = Path(exported["model_card"]).read_text()
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card and "| Q8_0 |" in card
