"""bench/vignette_cloze.py: option texts scored in the demo answers' conclusion slot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medtune.eval.benchmarks import get_benchmark, load_benchmark_records
from medtune.eval.loglik import ChoiceScores
from medtune.eval.report import compare_runs
from medtune.synth.demo import CONCLUSION_CUE

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "vignette_cloze.py"
sys.path.insert(0, str(SCRIPT.parent))  # the bench scripts import as modules, as in tests/unit/test_bench_reports.py
import vignette_cloze as vc  # noqa: E402


class FakeBackend:
    """Fixed log-probs per item, one list per request."""

    def __init__(self, fmt, logprobs, norm_logprobs=None):
        self.reasoning_format, self.logprobs, self.norm = fmt, logprobs, norm_logprobs or logprobs

    def prompt(self, record, system_prompt=None):
        return "PROMPT|"

    def score_choices(self, requests):
        assert len(requests) == len(self.logprobs)
        return [ChoiceScores(logprobs=lp, norm_logprobs=nl, num_tokens=[1] * len(lp))
                for lp, nl in zip(self.logprobs, self.norm)]


@pytest.mark.parametrize("fmt, opening", [("sections", "## Thinking\n\n"), ("think", "<think>\n"), ("plain", "")])
def test_the_slot_is_the_reasoning_opening_then_the_conclusion_cue(fmt, opening):
    record = load_benchmark_records(get_benchmark("dev_vignettes"))[0]
    context, choices = vc.cloze_request(FakeBackend(fmt, []), record)
    assert context == f"PROMPT|{opening}{CONCLUSION_CUE} "  # the space moves into the continuation when scored
    assert choices == [f"{text}." for text in record.options.values()]


def test_argmax_of_the_sum_or_the_normalised_score_ties_to_the_first_option():
    records = load_benchmark_records(get_benchmark("dev_vignettes"))[:3]
    sums = [[-1.0, -2.0, -3.0, -4.0], [-5.0, -1.0, -1.0, -9.0], [-9.0, -9.0, -9.0, -0.5]]
    norms = [[-4.0, -3.0, -2.0, -1.0]] * 3
    rows = vc.score_items(FakeBackend("sections", sums, norms), records, norm=False, subject_field="specialty")
    assert [r["pred"] for r in rows] == ["A", "B", "D"]
    assert all(r["correct"] == (r["pred"] == r["gold"]) and r["group"]["subject"] for r in rows)
    assert rows[0]["option_logprobs"] == {"A": -1.0, "B": -2.0, "C": -3.0, "D": -4.0}
    normed = vc.score_items(FakeBackend("sections", sums, norms), records, norm=True, subject_field=None)
    assert [r["pred"] for r in normed] == ["D", "D", "D"]


@pytest.mark.slow
def test_the_script_writes_a_pairable_evaluation_folder(tiny_model_dir, tmp_path):
    out = tmp_path / "cloze"
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tiny_model_dir), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert summary["accuracy"]["n"] == len(rows) == 88 and summary["protocol"] == "cloze"
    assert sum(r["correct"] for r in rows) == summary["accuracy"]["correct"]
    paired = compare_runs(out, out)  # what `medtune eval compare` pairs with a model's folder
    assert paired["items"] == 88 and paired["mcnemar"]["p_value"] == 1.0


def test_a_wrong_model_or_benchmark_is_a_one_line_error(tmp_path):
    for args in (["/nonexistent/model"], ["smollm2-135m", "--benchmark", "no_such_benchmark"]):
        proc = subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(tmp_path / "x")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and args[-1] in proc.stderr, proc.stderr[-800:]
        assert not (tmp_path / "x").exists()
