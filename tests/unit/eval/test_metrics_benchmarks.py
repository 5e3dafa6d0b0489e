"""Statistics against known values, and benchmark declarations (shipped ones load, broken ones fail)."""

from __future__ import annotations

import pytest

from medtune.eval import metrics
from medtune.eval.benchmarks import (
    BenchmarkError,
    load_benchmark_file,
    load_benchmarks,
    resolve_files,
)


def test_wilson_matches_published_values():
    # Newcombe (1998), Table I: 81/263 -> 0.2553 to 0.3662; 15/148 -> 0.0624 to 0.1605
    assert [round(x, 4) for x in metrics.wilson_interval(81, 263)] == [0.2553, 0.3662]
    assert [round(x, 4) for x in metrics.wilson_interval(15, 148)] == [0.0624, 0.1605]


def test_mcnemar_exact_and_chi_square():
    a = [True] * 10 + [False] * 10
    b = [False] * 8 + [True] * 2 + [True] * 10  # b=8 (A only), c=10 (B only)
    r = metrics.mcnemar(a, b)
    assert (r["b"], r["c"], r["test"]) == (8, 10, "exact binomial")
    assert r["p_value"] == pytest.approx(0.8145, abs=1e-3)  # scipy binomtest(8, 18)
    big_a, big_b = [True] * 40 + [False] * 10, [False] * 30 + [True] * 20
    r = metrics.mcnemar(big_a, big_b)
    assert r["test"].startswith("chi-square") and (r["b"], r["c"]) == (30, 10)
    assert r["statistic"] == pytest.approx((20 - 1) ** 2 / 40)
    with pytest.raises(ValueError, match="same items"):
        metrics.mcnemar([True], [True, False])


def test_paired_difference_sign_and_interval():
    d = metrics.paired_difference([False] * 20, [True] * 5 + [False] * 15)
    assert d["gain"] == 0.25 and d["ci95"][0] < 0.25 < d["ci95"][1]


def test_ece_is_zero_when_calibrated_and_large_when_overconfident():
    conf = [0.75] * 4
    assert metrics.expected_calibration_error(conf, [True, True, True, False])["ece"] == 0.0
    assert metrics.expected_calibration_error([0.99] * 4, [False] * 4)["ece"] == pytest.approx(0.99)


def test_permutation_and_counterfactual_consistency():
    p = metrics.permutation_consistency({"q1": ["x", "x"], "q2": ["x", "y"], "q3": [None, None]})
    assert p["n"] == 3 and p["consistency"] == pytest.approx(1 / 3, abs=1e-4)
    rows = [{"group": {"group_id": "g1"}, "pred": "A"}, {"group": {"group_id": "g1"}, "pred": "A"},
            {"group": {"group_id": "g2"}, "pred": "A"}, {"group": {"group_id": "g2"}, "pred": "C"},
            {"group": {}, "pred": "B"}]
    cf = metrics.counterfactual_consistency(rows)
    assert cf["groups"] == 2 and cf["consistency"] == 0.5 and cf["inconsistent_groups"] == ["g2"]


def test_rouge_l_and_length_analysis():
    r = metrics.rouge_l(["start aspirin and heparin now", "no idea"], ["start aspirin and heparin", "give oxygen"])
    assert r["per_item"][1] == 0.0 and 0.8 < r["per_item"][0] < 1.0
    lengths = [100, 200, 300, 400, 1000, 1200, 1400, 1600]
    correct = [True, True, True, True, False, False, False, True]
    out = metrics.length_vs_correctness(lengths, correct)
    assert out["pointbiserial_r"] < 0  # longer reasoning, less often right
    assert out["by_length"][0]["accuracy"] == 1.0 and out["by_length"][-2]["accuracy"] == 0.0


def test_every_shipped_benchmark_declaration_loads():
    specs = load_benchmarks()
    assert set(specs) >= {"medqa", "medmcqa", "pubmedqa", "mmlu_medical"}
    for s in specs.values():
        assert s.expected_items and s.chance and s.provenance
        assert s.loglik.harness_task or s.loglik.style == "chat"  # chat style: the format medtune trains on


def test_shipped_benchmarks_find_their_files(shared_data):
    for s in load_benchmarks().values():
        assert resolve_files(s, shared_data)
    assert len(resolve_files(load_benchmarks()["mmlu_medical"], shared_data)) == 6


@pytest.mark.parametrize(("text", "message"), [
    ("name: wrong\nfiles: x.jsonl\n", "must equal the file name"),
    ("name: broken\nfiles: x.jsonl\nimporterr: medqa\n", "importerr"),
    ("name: broken\n", "files"),
    ("name: broken\nfiles: x\nloglik:\n  template: '{{ question '\n", "invalid benchmark declaration"),
    ("name: [unclosed\n", "invalid benchmark declaration"),
])
def test_broken_declarations_fail_naming_the_file(tmp_path, text, message):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(BenchmarkError, match=message) as e:
        load_benchmark_file(path)
    assert str(path) in str(e.value)


def test_wrong_item_count_is_an_error(shared_data, tmp_path):
    from medtune.eval.benchmarks import get_benchmark, load_benchmark_records

    spec = get_benchmark("medqa").model_copy(update={"expected_items": 1000})
    with pytest.raises(BenchmarkError, match="expected 1000 items, the file gave 1273"):
        load_benchmark_records(spec, shared_data)


@pytest.mark.slow
def test_smollm2_harness_choices_are_single_tokens_and_fast_path_is_exact(embedded_dir, shared_data):
    """With SmolLM2 every harness choice is one token, so one forward per item scores all of them,
    and it equals scoring each choice by teacher forcing."""
    from medtune.eval import loglik
    from medtune.eval.benchmarks import get_benchmark, load_benchmark_records, loglik_request
    from medtune.models.load import load_model

    # fp32: the claim is that both paths compute the same thing; in bf16 (`auto` on a CPU with native bf16)
    # their different shapes round differently (bf16 vs fp32 agreement: tests/unit/eval/test_loglik_precision.py).
    m = load_model(str(embedded_dir), device="cpu", dtype="float32")
    for name in ("medqa", "medmcqa", "pubmedqa", "mmlu_medical"):
        spec = get_benchmark(name)
        for context, conts in [loglik_request(spec, r) for r in load_benchmark_records(spec, shared_data, limit=3)]:
            assert all(len(loglik._encode_pair(m.tokenizer, context, c)[1]) == 1 for c in conts)
    spec = get_benchmark("medqa")
    reqs = [loglik_request(spec, r) for r in load_benchmark_records(spec, shared_data, limit=1)]
    fast = loglik.score_choices(m.model, m.tokenizer, reqs)[0]
    assert fast.num_tokens == [1, 1, 1, 1]
    rows = [(0, j, *loglik._encode_pair(m.tokenizer, reqs[0][0], x)) for j, x in enumerate(reqs[0][1])]
    sums, ntok = {0: [0.0] * 4}, {0: [0] * 4}
    loglik._score_multi(m.model, rows, 4, sums, ntok)
    assert fast.logprobs == pytest.approx(sums[0], abs=1e-3)


def test_every_shipped_benchmark_loads_with_its_declared_count(shared_data):
    """The declared counts are the harness's: MedMCQA dev keeps its 21 duplicate-option items (flagged)."""
    from medtune.eval.benchmarks import load_benchmark_records

    for spec in load_benchmarks().values():
        records = load_benchmark_records(spec, shared_data)  # raises on a count other than expected_items
        assert len(records) == spec.expected_items, spec.name
        assert len({r.id for r in records}) == len(records), spec.name
    medmcqa = load_benchmark_records(load_benchmarks()["medmcqa"], shared_data)
    assert len(medmcqa) == 4183 and sum(bool(r.metadata.get("quality_flags")) for r in medmcqa) == 21


def test_mmlu_medical_ids_are_unique_and_stable(shared_data):
    from medtune.eval.benchmarks import load_benchmark_records

    spec = load_benchmarks()["mmlu_medical"]
    ids = [r.id for r in load_benchmark_records(spec, shared_data)]
    assert len(ids) == len(set(ids)) == 1089
    assert [r.id for r in load_benchmark_records(spec, shared_data)] == ids


def _records_file(path, ids):
    from medtune.data.records import Answer, Record

    path.write_text("".join(Record(id=i, source="t", task="mcq", question=f"Q{n}?", options={"A": "x", "B": "y"},
                                   answer=Answer(letter="A")).model_dump_json() + "\n" for n, i in enumerate(ids)))
    return path


def test_duplicate_item_ids_are_refused_naming_the_files_and_the_id(tmp_path):
    """Whatever importer made them, two items with one id would silently count as one (resume, compare, score)."""
    from medtune.eval.benchmarks import BenchmarkSpec, load_benchmark_records

    _records_file(tmp_path / "a.jsonl", ["q1", "q2"])
    _records_file(tmp_path / "b.jsonl", ["q3", "q2"])
    spec = BenchmarkSpec(name="dups", files=str(tmp_path / "*.jsonl"), importer="medtune")
    with pytest.raises(BenchmarkError, match="'dups': item id 'q2' occurs in .*a.jsonl and again in .*b.jsonl"):
        load_benchmark_records(spec)
    one = BenchmarkSpec(name="dups", files=str(_records_file(tmp_path / "c.jsonl", ["q1", "q1"])), importer="medtune")
    with pytest.raises(BenchmarkError, match="item id 'q1' occurs twice in .*c.jsonl"):
        load_benchmark_records(one)
    assert len(load_benchmark_records(one, limit=1)) == 1  # the items asked for are checked, not the whole file
