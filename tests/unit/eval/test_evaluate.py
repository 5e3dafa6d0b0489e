"""The evaluation stage on the tiny model: loglik correctness, cot, resume, compare, reports."""

from __future__ import annotations

import json

import pytest
from evalkit import make_mcq

from medtune.eval.backends import TransformersBackend, build_backend
from medtune.eval.benchmarks import BenchmarkSpec, get_benchmark, loglik_request
from medtune.eval.evaluate import compare_models, evaluate
from medtune.eval.loglik import _encode_pair
from medtune.eval.store import PredictionStore

SPEC = BenchmarkSpec(name="heldout", files="-")


@pytest.fixture()
def backend(tiny_model_dir):
    return build_backend(str(tiny_model_dir), batch_size=4, device="cpu")


def test_loglik_matches_one_sequence_at_a_time(backend):
    """Batched, padded, prefix-shared scores equal a plain unpadded forward per (context, choice), its LM head
    applied in float32 (as loglik does for a bf16 model; the same as the model's logits in fp32)."""
    import torch

    records = make_mcq(5)
    requests = [loglik_request(SPEC, r) for r in records]
    scores = backend.score_choices(requests)
    model, tok = backend.model, backend.tokenizer
    for (context, conts), s in zip(requests, scores):
        for cont, got in zip(conts, s.logprobs):
            ctx, cont_ids = _encode_pair(tok, context, cont)
            ids = torch.tensor([ctx + cont_ids])
            with torch.no_grad():
                hidden = model.get_decoder()(input_ids=ids).last_hidden_state[0].float()
                logp = torch.log_softmax(hidden @ model.get_output_embeddings().weight.float().T, -1)
            want = sum(float(logp[len(ctx) - 1 + k, t]) for k, t in enumerate(cont_ids))
            assert got == pytest.approx(want, abs=1e-4)


def test_multi_token_choices_score_by_teacher_forcing(backend):
    """Choices of several tokens (option texts) take the per-choice path and still rank like a plain forward."""
    spec = BenchmarkSpec(name="t", files="-", loglik={"choice": " {{ text }}"})
    records = make_mcq(3)
    requests = [loglik_request(spec, r) for r in records]
    scores = backend.score_choices(requests)
    assert any(n > 1 for s in scores for n in s.num_tokens)
    assert all(len(s.logprobs) == 4 and max(s.logprobs) < 0 for s in scores)


def test_evaluate_resumes_after_interruption(backend, tmp_path):
    records = make_mcq(12)
    full = evaluate(backend, SPEC, records, tmp_path / "full", chunk_size=4, write_report=False)

    calls = {"n": 0}
    real = backend.score_choices

    def crash_on_second_chunk(requests):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(requests)

    backend.score_choices = crash_on_second_chunk
    with pytest.raises(KeyboardInterrupt):
        evaluate(backend, SPEC, records, tmp_path / "resumed", chunk_size=4, write_report=False)
    store = PredictionStore(tmp_path / "resumed" / "predictions.jsonl")
    assert len(store.load()) == 4
    # A crash in the middle of a write leaves a torn line; resume must cut it, not merge it.
    with open(store.path, "a") as f:
        f.write('{"id": "torn", "corr')
    seen = []
    backend.score_choices = lambda reqs: seen.append(len(reqs)) or real(reqs)
    resumed = evaluate(backend, SPEC, records, tmp_path / "resumed", chunk_size=4, write_report=False)
    assert sum(seen) == 8  # only the 8 missing items were scored again
    rows = store.load()
    assert sorted(r["id"] for r in rows) == sorted(r.id for r in records)
    assert resumed["accuracy"] == full["accuracy"]


def test_summary_covers_the_items_asked_for_not_every_row_in_the_folder(backend, tmp_path):
    """A second call with fewer items (--limit 4 after 12) reuses their rows; its summary is of those items only."""
    records, source = make_mcq(12), "benchmark-file-sha"  # as `eval run`: the file's hash, whatever the limit
    evaluate(backend, SPEC, records, tmp_path, write_report=False, benchmark_sha256=source)
    rows = {r["id"]: r for r in PredictionStore(tmp_path / "predictions.jsonl").load()}
    seen = []
    real = backend.score_choices
    backend.score_choices = lambda reqs: seen.append(len(reqs)) or real(reqs)
    few = records[:4]
    summary = evaluate(backend, SPEC, few, tmp_path, benchmark_sha256=source)
    assert seen == []  # all four were resumed
    assert summary["accuracy"]["n"] == 4 and summary["accuracy"]["correct"] == sum(rows[r.id]["correct"] for r in few)
    assert sum(s["n"] for s in summary["by_subject"].values()) == 4
    assert sum(b["count"] for b in summary["calibration"]["bins"]) == 4
    assert "Items: 4;" in (tmp_path / "report.md").read_text()
    assert len(PredictionStore(tmp_path / "predictions.jsonl").load()) == 12  # the other rows stay for a later resume


def test_evaluate_refuses_two_items_with_one_id(backend, tmp_path):
    records = make_mcq(3)
    records[2] = records[2].model_copy(update={"id": records[0].id})
    with pytest.raises(ValueError, match=f"item id '{records[0].id}' occurs twice"):
        evaluate(backend, SPEC, records, tmp_path, write_report=False)


def test_open_ended_items_stay_out_of_accuracy_tables_and_pairing(backend, tmp_path):
    """Open-ended rows carry ROUGE-L, not `correct`: the report's by-specialty table and compare skip them."""
    from medtune.data.records import Answer, Record
    from medtune.eval.report import compare_runs

    mcq = [r.model_copy(update={"metadata": {**r.metadata, "specialty": "cardiology"}}) for r in make_mcq(3)]
    open_item = Record.create(source="t", task="open", question="How is a tension pneumothorax treated?",
                              answer=Answer(text="Needle decompression"), metadata={"specialty": "cardiology"})
    for name, records in (("a", [*mcq, open_item]), ("b", [*mcq, open_item]), ("open", [open_item])):
        evaluate(backend, SPEC, records, tmp_path / name, protocol="cot", max_new_tokens=8,  # writes report.html
                 benchmark_sha256="one benchmark file")  # subsets of one benchmark (else each hashes its records)
    assert "cardiology" in (tmp_path / "a" / "report.html").read_text()
    assert compare_runs(tmp_path / "a", tmp_path / "b")["items"] == 3
    with pytest.raises(ValueError, match="no multiple-choice predictions to pair"):
        compare_runs(tmp_path / "a", tmp_path / "open")


def test_compare_runs_pairs_only_the_items_asked_for(tmp_path):
    from medtune.eval.report import compare_runs

    for name, right in (("a", [True, False, True]), ("b", [True, True, False])):
        PredictionStore(tmp_path / name / "predictions.jsonl").append(
            [{"id": f"q{i}", "correct": c, "status": "ok"} for i, c in enumerate(right)])
    assert compare_runs(tmp_path / "a", tmp_path / "b")["items"] == 3
    r = compare_runs(tmp_path / "a", tmp_path / "b", ids=["q0", "q1"])
    assert r["items"] == 2 and r["flips"] == {"gained": ["q1"], "lost": []}


def test_a_comparison_names_each_sides_protocol_and_refuses_two_benchmarks(tmp_path):
    import json

    from medtune.eval.evaluate import summarize
    from medtune.eval.report import compare_runs

    for name, bench, protocol in (("a", "dev", "tfidf"), ("b", "dev", "cot"), ("c", "medqa", "cot")):
        rows = [{"id": f"q{i}", "correct": i % 2 == 0, "status": "ok", "options": {"A": "x", "B": "y"}, "gold": "A",
                 "pred": "A" if i % 2 == 0 else "B", "reasoning_chars": 10} for i in range(3)]
        PredictionStore(tmp_path / name / "predictions.jsonl").append(rows)
        summary = summarize(rows, BenchmarkSpec(name=bench, files="-", description="d"), "cot") | {"protocol": protocol}
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    r = compare_runs(tmp_path / "a", tmp_path / "b", tmp_path / "out")
    assert (r["benchmark"], r["protocol_a"], r["protocol_b"]) == ("dev", "tfidf", "cot")
    md = (tmp_path / "out" / "compare.md").read_text()
    assert "| tfidf |" in md and "| cot |" in md and "different protocols (tfidf, cot)" in md
    with pytest.raises(ValueError, match="'dev' and .* 'medqa'"):
        compare_runs(tmp_path / "a", tmp_path / "c")


def test_evaluate_refuses_to_mix_protocols(backend, tmp_path):
    records = make_mcq(2)
    evaluate(backend, SPEC, records, tmp_path, write_report=False)
    with pytest.raises(ValueError, match="protocol: 'loglik' -> 'cot'"):
        evaluate(backend, SPEC, records, tmp_path, protocol="cot", write_report=False)


def test_cot_with_self_consistency_and_report(backend, tmp_path):
    records = make_mcq(4, with_groups=True)
    summary = evaluate(backend, SPEC, records, tmp_path, protocol="cot", max_new_tokens=8, temperature=0.8,
                       num_samples=3, seed=0, permutations=1)
    rows = PredictionStore(tmp_path / "predictions.jsonl").load()
    main = [r for r in rows if "#perm" not in r["id"]]
    assert len(main) == 4 and len(rows) == 8
    assert all(len(r["samples"]) == 3 and r["status"] in ("ok", "unparseable", "conflicting") for r in main)
    # a random tiny model's text is not an answer: unparseable is counted wrong and reported separately
    assert summary["accuracy"]["correct"] == sum(r["correct"] for r in main)
    assert summary["accuracy"]["unparseable"] == sum(r["status"] != "ok" for r in main)
    assert "permutation_consistency" in summary and summary["counterfactual_consistency"]["groups"] == 2
    html = (tmp_path / "report.html").read_text()
    assert "data:image/svg+xml;base64," in html and "research" in html.lower()
    assert "Wilson" in (tmp_path / "report.md").read_text()


def test_loglik_summary_has_calibration_and_subjects(backend, tmp_path):
    summary = evaluate(backend, SPEC, make_mcq(8), tmp_path)
    assert set(summary["by_subject"]) == {"cardiology", "pulmonology"}
    assert 0 <= summary["calibration"]["ece"] <= 1
    assert sum(b["count"] for b in summary["calibration"]["bins"]) == 8
    assert "data:image/svg+xml;base64," in (tmp_path / "report.html").read_text()


def test_compare_models_base_vs_two_adapters(tiny_model_dir, two_runs, tmp_path):
    records = make_mcq(16)
    run1, run2 = two_runs
    r1 = compare_models(str(tiny_model_dir), run1, records, tmp_path / "c1", batch_size=8, device="cpu", log=lambda m: None)
    r2 = compare_models(str(tiny_model_dir), run2, records, tmp_path / "c2", batch_size=8, device="cpu", log=lambda m: None)
    base1 = PredictionStore(tmp_path / "c1" / "base" / "predictions.jsonl").load()
    t1 = PredictionStore(tmp_path / "c1" / "tuned" / "predictions.jsonl").load()
    t2 = PredictionStore(tmp_path / "c2" / "tuned" / "predictions.jsonl").load()
    # the adapters are applied: tuned log-probs differ from the base and from each other
    assert base1[0]["option_logprobs"] != t1[0]["option_logprobs"] != t2[0]["option_logprobs"]
    for r, tuned in ((r1, t1), (r2, t2)):
        assert r["items"] == 16 and 0.0 <= r["mcnemar"]["p_value"] <= 1.0
        b, c = r["mcnemar"]["b"], r["mcnemar"]["c"]
        assert r["difference_b_minus_a"]["gain"] == pytest.approx((c - b) / 16)
        assert r["tuned"]["correct"] == sum(x["correct"] for x in tuned)
        lo, hi = r["tuned"]["ci95"]
        assert lo <= r["tuned"]["accuracy"] <= hi
    assert json.loads((tmp_path / "c1" / "compare.json").read_text())["items"] == 16
    assert "McNemar" in (tmp_path / "c1" / "compare.md").read_text()
    # compare.html is the rendered report of both evaluations (tables, not Markdown source in a <pre>)
    html = (tmp_path / "c1" / "compare.html").read_text()
    assert "|---|" not in html and html.count('<tr data-eval="') == 2 and 'data-compare="' in html
    assert len(r1["flips"]["gained"]) == r1["mcnemar"]["c"] and len(r1["flips"]["lost"]) == r1["mcnemar"]["b"]


def test_transformers_backend_uses_the_chat_template(tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    backend = TransformersBackend(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tiny_tokenizer, "sections")
    prompt = backend.prompt(make_mcq(1)[0])
    assert prompt.startswith("<|im_start|>user") and prompt.endswith("<|im_start|>assistant\n")


def test_shipped_benchmarks_render_harness_prompts():
    from medtune.data.records import Answer, Record

    r = Record.create(source="pubmedqa", task="mcq", question="Does X help?", context="Sec one.\nSec two.",
                      options={"A": "yes", "B": "no", "C": "maybe"}, answer=Answer(letter="A"))
    ctx, conts = loglik_request(get_benchmark("pubmedqa"), r)
    assert ctx == "Abstract: Sec one.\nSec two.\nQuestion: Does X help?\nAnswer:" and conts == [" yes", " no", " maybe"]
    m = Record.create(source="mmlu", task="mcq", question=" Q? ", options={"A": "a", "B": "b"}, answer=Answer(letter="A"),
                      metadata={"subject": "clinical_knowledge"})
    ctx, _ = loglik_request(get_benchmark("mmlu_medical"), m)
    assert ctx.startswith("The following are multiple choice questions (with answers) about clinical knowledge.\n\nQ?\nA. a")


def test_chat_style_scores_the_trained_answer_format(backend):
    """Record files and compare_models use the chat style: prompt + empty reasoning + 'The answer is (' + letter."""
    from medtune.eval.runners import run_loglik

    records = make_mcq(2)
    chat = BenchmarkSpec(name="t", files="-", loglik={"style": "chat"})
    rows = run_loglik(backend, chat, records)
    assert rows[0]["prompt"].endswith("<|im_start|>assistant\n## Final Response\n\nThe answer is (")
    assert set(rows[0]["option_logprobs"]) == {"A", "B", "C", "D"}
    harness = run_loglik(backend, SPEC, records)
    assert harness[0]["prompt"].startswith("Question: ") and harness[0]["option_logprobs"] != rows[0]["option_logprobs"]
