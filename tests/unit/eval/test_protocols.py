"""eval.protocols: one benchmark scored by several protocols, each in its own folder, with the same rows as alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evalkit import make_mcq
from pydantic import ValidationError

from medtune.config import ConfigError, load_config
from medtune.config.sections.eval import EvalSection
from medtune.eval.benchmarks import BenchmarkError
from medtune.eval.stage import run_eval
from medtune.eval.store import PredictionStore
from medtune.pipeline.runner import preflight

QUIET = {"log": lambda *_: None}


@pytest.fixture(scope="module")
def benches(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("bench")
    heldout, other = folder / "heldout.jsonl", folder / "other.jsonl"
    heldout.write_text("".join(r.model_dump_json() + "\n" for r in make_mcq(4)))
    other.write_text("".join(r.model_dump_json() + "\n" for r in make_mcq(3, seed=1)))
    return heldout, other


def test_protocols_for_and_result_names():
    s = EvalSection(protocol="cot", protocols={"dev_vignettes": ["loglik", "cot", "loglik"], "medqa": ["loglik"]})
    assert s.protocols_for("dev_vignettes") == ["loglik", "cot"]  # repeats dropped, order kept
    assert s.protocols_for("medqa") == ["loglik"] and s.protocols_for("heldout") == ["cot"]
    assert [s.result_name("dev_vignettes", p) for p in ("loglik", "cot")] == ["dev_vignettes-loglik", "dev_vignettes-cot"]
    assert s.result_name("medqa", "loglik") == "medqa" and s.result_name("heldout", "cot") == "heldout"
    for bad in ({"medqa": []}, {"medqa": ["ppl"]}, {"medqa": "loglik"}):
        with pytest.raises(ValidationError):
            EvalSection(protocols=bad)


def test_a_benchmark_scored_two_ways_gives_the_rows_of_each_way_alone(tiny_model_dir, benches, tmp_path):
    heldout, other = benches
    both = EvalSection(benchmarks=[str(heldout), str(other)], batch_size=4, max_new_tokens=6,
                       protocols={"heldout": ["loglik", "cot"]})
    index = run_eval(str(tiny_model_dir), both, tmp_path / "both", device="cpu", **QUIET)
    assert list(index["benchmarks"]) == ["heldout-loglik", "heldout-cot", "other"]
    assert [b["protocol"] for b in index["benchmarks"].values()] == ["loglik", "cot", "loglik"]
    assert json.loads((tmp_path / "both" / "index.json").read_text())["benchmarks"] == index["benchmarks"]
    for protocol in ("loglik", "cot"):
        alone = EvalSection(benchmarks=[str(heldout)], batch_size=4, max_new_tokens=6, protocol=protocol)
        run_eval(str(tiny_model_dir), alone, tmp_path / protocol, device="cpu", **QUIET)
        rows = PredictionStore(tmp_path / "both" / f"heldout-{protocol}" / "predictions.jsonl").load()
        solo = PredictionStore(tmp_path / protocol / f"heldout-{protocol}" / "predictions.jsonl").load()
        assert len(rows) == 4 and [r["pred"] for r in rows] == [r["pred"] for r in solo]
        assert all(r.get("protocol", protocol) == protocol for r in rows)
    assert (tmp_path / "both" / "other-loglik" / "predictions.jsonl").is_file()
    assert not (tmp_path / "both" / "other-cot").exists()


def test_a_protocols_key_naming_no_benchmark_is_refused_before_the_model_loads(benches, tmp_path, monkeypatch):
    import medtune.eval.stage

    monkeypatch.setattr(medtune.eval.stage, "describe_model", lambda *a, **k: pytest.fail("model described first"))
    section = EvalSection(benchmarks=[str(benches[0])], protocols={"heldot": ["cot"]})
    with pytest.raises(BenchmarkError, match=r"eval.protocols names heldot, which is not among the benchmarks evaluated \(heldout\)"):
        run_eval("smollm2-135m", section, tmp_path, **QUIET)


def test_preflight_names_a_protocols_key_that_is_no_benchmark_of_the_run(benches):
    good = load_config(None, ["stages=[synth, eval]", "synth.heldout_cases=3", f"eval.benchmarks=[{benches[1]}]",
                              "eval.protocols={heldout: [loglik, cot], other: [cot]}"])
    preflight(good, ["eval"])
    bad = load_config(None, ["stages=[synth, eval]", "synth.heldout_cases=3", f"eval.benchmarks=[{benches[1]}]",
                             "eval.protocols={dev_vignettes: [cot]}"])
    with pytest.raises(ConfigError) as exc:
        preflight(bad, ["eval"])
    problems = {p.path: p.message for p in exc.value.problems}
    assert list(problems) == ["eval.protocols.dev_vignettes"]
    assert "names no benchmark evaluated here (heldout, other)" in problems["eval.protocols.dev_vignettes"]


def test_a_choice_that_adds_no_token_is_refused_not_scored_zero():
    """A tokenizer that merges the choice into the context's last token would leave an empty continuation,
    whose log-probability 0.0 beats every real choice: refused with the choice named."""
    from medtune.eval.loglik import _encode_pair

    class Merging:  # one token per whitespace-separated word: "Answer:" + "A" is still one word
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [hash(w) % 1000 for w in text.split()]}

    assert _encode_pair(Merging(), "Answer:", " A")[1]  # a real continuation token
    with pytest.raises(ValueError, match="adds no token"):
        _encode_pair(Merging(), "Answer:", "A")
