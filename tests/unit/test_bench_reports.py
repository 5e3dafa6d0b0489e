"""The issue-17 benches: their item files, task YAML and reports (the timed runs themselves are the lead's)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def test_harness_items_use_medtunes_prompts_and_the_report_compares_sides(shared_data, tmp_path):
    import eval_vs_harness as bench

    from medtune.eval.benchmarks import get_benchmark, load_benchmark_records, loglik_request

    path = bench.write_items(str(shared_data), 5, tmp_path)
    items = [json.loads(line) for line in path.read_text().splitlines()]
    spec = get_benchmark("medqa")
    records = load_benchmark_records(spec, shared_data, limit=5)
    assert [x["context"] for x in items] == [loglik_request(spec, r)[0] for r in records]
    task = yaml.safe_load((tmp_path / f"{bench.TASK}.yaml").read_text())
    assert task["dataset_kwargs"]["data_files"]["test"] == str(path) and task["doc_to_choice"] == ["A", "B", "C", "D"]
    assert task["target_delimiter"] == " " and task["output_type"] == "multiple_choice"
    gold = [x["gold"] for x in items]
    side = lambda s, pred, shift: {"dtype": "x", "score_s": s, "load_s": 1.0, "peak_rss_mb": 100.0, "pred": pred,  # noqa: E731
                                   "logprobs": [[-1.0 - shift, -2.0, -3.0, -4.0] for _ in items]}
    results = {"medtune_fp32": [side(4.0, gold, 0.0)], "medtune_auto": [side(1.0, gold, 0.1)],
               "harness_default": [side(8.0, [0] * 5, 0.0)]}
    lines = "\n".join(bench.compare(results, items))
    assert "| medtune_auto vs medtune_fp32 | 5/5 (100.0%) | 5/5 | 0.0250 |" in lines
    assert "medtune_auto is 8.00x faster than harness_default" in lines


def test_train_bench_report_gives_both_ratios():
    import train_throughput as bench

    run = lambda tps, mem: {"tokens_per_s": tps, "peak_rss_mb": mem, "padding_share": 0.2, "precision": "p"}  # noqa: E731
    results = {"plain_fp32": [run(100, 8000)], "plain_bf16": [run(150, 8000)], "medtune": [run(300, 2000), run(330, 2100)]}
    args = SimpleNamespace(device="cpu", steps=6, batch_size=4, max_length=512, threads=2, base="m", rounds=2)
    text = "\n".join(bench.report(results, args))
    assert "medtune / plain_fp32: 3.15x trained tokens/s, 0.26x peak RSS MB" in text
    assert "medtune / plain_bf16: 2.10x" in text
