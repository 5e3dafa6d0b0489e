"""The bf16 inference path keeps loglik answers: MedQA items scored in bf16 and in fp32 agree, and
a bf16 model's LM head is applied in float32, so near options do not tie on bf16's coarse grid.

Guard of issue 17 (the 300-item figure is in docs/benchmarks.md, bench/eval_vs_harness.py): on
60 MedQA items the letters agree on >= 98% of items and bf16 accuracy lies inside the fp32 run's
Wilson 95% interval. bf16 is asked for explicitly, so the check means something on any CPU; on
one without native bf16 it runs emulated, ~6x slower than fp32 (an AVX2-only AMD EPYC: 3.3 s per
item), so there it checks 24 items, all of which must agree.
"""

from __future__ import annotations

import pytest


def test_a_bf16_model_scores_choices_with_a_float32_head(tiny_model_dir):
    """In bf16 the logits left the head rounded to 8 bits of mantissa (steps of 0.0625-0.125 at a vocabulary's
    logit sizes): 41 of the 88 dev vignettes had two options tied for the top under the base model, and the
    argmax took the first letter. The head is now applied in float32 to the decoder's bf16 hidden state."""
    import torch
    from tiny import lively

    from medtune.eval.loglik import score_choices
    from medtune.models.load import load_model

    loaded = load_model(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    model, tok = lively(loaded.model, scale=0.6), loaded.tokenizer
    letters = ["A", "B", "C", "D"]  # one token each with the tiny tokenizer: the one-forward path
    ids = [tok(letter, add_special_tokens=False)["input_ids"][-1] for letter in letters]
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # four letters a model can barely tell apart, as a 135M one on a hard item
        head = model.get_output_embeddings().weight
        shared = torch.randn(head.shape[1], generator=gen) * 1.5
        for i in ids:
            head[i] = shared + torch.randn(head.shape[1], generator=gen) * 0.02
    requests = [(f"Question {i}: fever and cough for {i} days, which one?\nAnswer:", letters) for i in range(40)]
    scores = score_choices(model, tok, requests, batch_size=8)
    naive_ties = ties = 0
    for (context, _), s in zip(requests, scores):
        ctx = torch.tensor([tok(context, add_special_tokens=False)["input_ids"]])
        with torch.inference_mode():
            hidden = model.get_decoder()(input_ids=ctx).last_hidden_state[:, -1].float()
            exact = torch.log_softmax(hidden @ model.get_output_embeddings().weight.float().T, dim=-1)[0, ids]
            naive = torch.log_softmax(model(input_ids=ctx).logits[0, -1].float(), dim=-1)[ids]
        assert s.logprobs == pytest.approx(exact.tolist(), abs=2e-3)
        ties += len(set(s.logprobs)) < len(letters)
        naive_ties += len(set(naive.tolist())) < len(letters)
    assert ties == 0 and naive_ties >= 5, (ties, naive_ties)


@pytest.mark.slow
def test_bf16_loglik_agrees_with_fp32_on_medqa(shared_data):
    from medtune.eval.backends import TransformersBackend
    from medtune.eval.benchmarks import get_benchmark, load_benchmark_records
    from medtune.eval.metrics import wilson_interval
    from medtune.eval.runners import run_loglik
    from medtune.models.load import load_model
    from medtune.models.precision import cpu_has_native_bf16

    spec = get_benchmark("medqa")
    records = load_benchmark_records(spec, shared_data, limit=60 if cpu_has_native_bf16() else 24)
    rows = {}
    for dtype in ("float32", "bfloat16"):
        loaded = load_model("smollm2-135m", device="cpu", dtype=dtype)
        backend = TransformersBackend(loaded.model, loaded.tokenizer, batch_size=8)
        assert backend.dtype == dtype
        rows[dtype] = run_loglik(backend, spec, records)
    fp32, bf16 = rows["float32"], rows["bfloat16"]
    agree = sum(a["pred"] == b["pred"] for a, b in zip(fp32, bf16)) / len(records)
    lo, hi = wilson_interval(sum(r["correct"] for r in fp32), len(records))
    acc16 = sum(r["correct"] for r in bf16) / len(records)
    diff = max(abs(a["option_logprobs"][k] - b["option_logprobs"][k]) for a, b in zip(fp32, bf16) for k in a["option_logprobs"])
    print(f"\nletter agreement {agree:.3f}; accuracy fp32 CI [{lo:.3f}, {hi:.3f}], bf16 {acc16:.3f}; max |dlogp| {diff:.3f}")
    assert agree >= 0.98
    assert lo <= acc16 <= hi
    assert 0 < diff < 1.0  # bf16 really ran (log-probs moved), and not far
