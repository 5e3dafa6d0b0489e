"""The pieces of `medtune run` that decide: fingerprints, the skip/resume/run decision, stage selection."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medtune.config import STAGE_NAMES, ConfigError, load_config
from medtune.pipeline import STAGES, StageError
from medtune.pipeline.fingerprint import HashCache, section_values
from medtune.pipeline.manifest import StageManifest, stage_key, what_changed
from medtune.pipeline.registry import select_stages
from medtune.pipeline.runner import decide


def test_every_config_stage_is_registered_with_a_typed_result():
    assert set(STAGES) == set(STAGE_NAMES)
    for stage in STAGES.values():
        assert stage.output.__name__.endswith("Output")
        cfg = load_config(None)
        section_values(cfg, stage.reads)  # every path a stage reads exists in RunConfig


def test_hash_cache_rehashes_only_changed_files(tmp_path, monkeypatch):
    f = tmp_path / "a.jsonl"
    f.write_text("one\n")
    cache = HashCache(tmp_path / "fp.json")
    first = cache.of(f)
    calls = []
    import medtune.utils.hashcache as hc

    monkeypatch.setattr(hc, "sha256_file", lambda p: calls.append(p) or "x")
    assert cache.of(f) == first and calls == []  # same size and mtime: cached
    cache.save()
    assert HashCache(tmp_path / "fp.json").of(f) == first and calls == []  # and remembered across runs
    f.write_text("two\n")
    os.utime(f, ns=(1, 1))
    assert cache.of(f) == "x" and calls == [f]
    monkeypatch.undo()
    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "w.bin").write_bytes(b"1")
    before = HashCache(tmp_path / "other.json").of(folder)
    (folder / "sub" / "w.bin").write_bytes(b"2")
    assert HashCache(tmp_path / "other.json").of(folder) != before
    assert cache.of(tmp_path / "missing") == "absent" and cache.of("hf:owner/name").startswith("id:")


def _manifest(status="complete", section=None, inputs=None, outputs=None):
    section, inputs = section or {"eval.limit": 5}, inputs or {"model": "aa"}
    return StageManifest(stage="eval", status=status, key=stage_key("eval", section, inputs), section=section,
                         inputs=inputs, outputs=outputs or {}, started="t0", finished="t1")


def test_decide_skip_resume_run_and_why(tmp_path):
    cache = HashCache(tmp_path / "fp.json")
    section, inputs = {"eval.limit": 5}, {"model": "aa"}
    key = stage_key("eval", section, inputs)
    assert decide(None, key, section, inputs, cache, False) == ("run", "never run")
    assert decide(_manifest(), key, section, inputs, cache, False)[0] == "skip"
    assert decide(_manifest(), key, section, inputs, cache, True) == ("run", "--force")
    assert decide(_manifest("running"), key, section, inputs, cache, False)[0] == "resume"
    assert decide(_manifest("failed"), key, section, inputs, cache, False)[0] == "resume"
    new = {"eval.limit": 7}
    action, why = decide(_manifest("running"), stage_key("eval", new, inputs), new, inputs, cache, False)
    assert action == "run" and why == "changed: eval.limit 5 -> 7"  # interrupted work of other settings is not resumed
    out = tmp_path / "summary.json"
    out.write_text("{}")
    done = _manifest(outputs={str(out): cache.of(out)})
    assert decide(done, key, section, inputs, cache, False)[0] == "skip"
    out.unlink()
    assert decide(done, key, section, inputs, cache, False) == ("run", f"output changed or missing: {out}")


def test_decide_refreshes_a_complete_output_when_only_what_a_refresh_handles_changed(tmp_path):
    """export's card cites the evaluation: a new evaluation alone refreshes the stage (the card), anything else runs it."""
    cache = HashCache(tmp_path / "fp.json")
    gguf = tmp_path / "m-q8_0.gguf"
    gguf.write_bytes(b"gguf")
    section, card = {"export.gguf": ["q8_0"]}, ("evaluations in the model card",)

    def prev(inputs, status="complete"):
        return StageManifest(stage="export", status=status, key=stage_key("export", section, inputs), section=section,
                             inputs=inputs, outputs={str(gguf): cache.of(gguf)}, started="t0", finished="t1")

    old, new = {"trained model": "aa", card[0]: "e1"}, {"trained model": "aa", card[0]: "e2"}
    key = stage_key("export", section, new)
    assert decide(prev(old), key, section, new, cache, False, card) == (
        "refresh", "changed: evaluations in the model card changed: refreshing that alone (the rest of its output is up to date)")
    assert decide(prev({"trained model": "aa"}), key, section, new, cache, False, card)[0] == "refresh"  # an older manifest
    assert decide(prev(old), key, section, new, cache, False)[0] == "run"  # a stage that cannot refresh
    assert decide(prev(old), key, section, new, cache, True, card)[0] == "run"  # --force
    assert decide(prev(old, "failed"), key, section, new, cache, False, card)[0] == "run"
    model = {"trained model": "bb", card[0]: "e2"}
    assert decide(prev(old), stage_key("export", section, model), section, model, cache, False, card)[0] == "run"
    other = {"export.gguf": ["f16"]}
    assert decide(prev(old), stage_key("export", other, new), other, new, cache, False, card)[0] == "run"
    done = prev(old)
    gguf.unlink()
    assert decide(done, key, section, new, cache, False, card)[0] == "run"  # an output gone: made again


def test_what_changed_names_values_and_inputs():
    old = _manifest(section={"train.lora.r": 8, "train.seed": 1}, inputs={"records": "a", "old": "x"})
    assert what_changed(old, {"train.lora.r": 16, "train.seed": 1}, {"records": "b", "new": "y"}) == [
        "train.lora.r 8 -> 16", "new input new", "input old dropped", "records changed"]


def test_stage_selection():
    declared = ["synth", "data", "train", "eval"]
    assert select_stages(declared) == declared
    assert select_stages(declared, only=["eval", "data"]) == ["data", "eval"]
    assert select_stages(declared, start="train") == ["train", "eval"]
    with pytest.raises(StageError, match="not in this config's stages"):
        select_stages(declared, only=["export"])
    with pytest.raises(StageError, match="selects none"):  # nothing to run is a mistake to say, not a success
        select_stages(declared, only=["data"], start="train")
    with pytest.raises(StageError, match="lists no stages"):
        select_stages([])


def test_medtune_run_with_an_empty_stage_list_or_no_stage_selected_exits_2(tmp_path):
    from typer.testing import CliRunner

    from medtune.cli.main import app

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run_dir: {tmp_path / 'run'}\nstages: [data, train]\n")
    for args, said in ((["--stages", ","], "names no stage"), (["--stages", "data", "--from", "train"], "selects none")):
        r = CliRunner().invoke(app, ["run", str(cfg), *args])
        assert r.exit_code == 2 and said in r.output, (args, r.output)
    assert not (tmp_path / "run" / "stages").exists()


def test_stages_run_in_pipeline_order_and_once():
    assert load_config(None, ["stages=[eval,data,train]"]).stages == ["data", "train", "eval"]
    assert load_config(None, ["stages=serve,data"]).stages == ["data", "serve"]
    with pytest.raises(ConfigError, match="listed twice"):
        load_config(None, ["stages=[data,data]"])
    with pytest.raises(ConfigError, match="stages"):
        load_config(None, ["stages=[deploy]"])


def test_the_serve_stage_names_a_gguf_only_where_llama_cpp_can_serve_it():
    """A quickstart.sh install has the serve extra but not llama-cpp-python: the stage's command must run there."""
    from types import SimpleNamespace

    from medtune.config.sections.serve import ServeSection
    from medtune.pipeline.stages.serve import served_model

    export = SimpleNamespace(files={"q8_0": Path("e/m-q8_0.gguf"), "q4_k_m": Path("e/m-q4_k_m.gguf")})
    train = SimpleNamespace(run_dir=Path("run/train"))
    assert served_model(ServeSection(), export, train, gguf_ok=True) == Path("e/m-q4_k_m.gguf")
    assert served_model(ServeSection(), export, train, gguf_ok=False) == Path("run/train")
    assert served_model(ServeSection(model="x.gguf"), export, train, gguf_ok=False) == Path("x.gguf")
    assert served_model(ServeSection(), None, train, gguf_ok=True) == Path("run/train")


def test_the_train_stage_names_the_adapter_rank_only_for_an_adapter():
    from medtune.pipeline.stages.train import describe

    lora = load_config(None, overrides=["train.max_steps=630", "train.save_steps=90"])
    assert describe(lora) == "smollm2-135m: sft, lora r=16, 630 steps, checkpoints every 90 steps"
    full = load_config(None, overrides=["train.method=full", "train.epochs=2", "train.save_steps=0"])
    assert describe(full) == "smollm2-135m: sft, full, 2 epochs, checkpoints every - steps"


def _train_key(tmp_path: Path, *overrides: str, records: Path | None = None) -> str:
    """The train stage's key as `medtune run` computes it (inputs by content), with the data stage's records or not."""
    from medtune.pipeline.registry import Context, RunLayout
    from medtune.pipeline.results import DataOutput

    cfg, stage = load_config(None, list(overrides)), STAGES["train"]
    ctx = Context(cfg, RunLayout(tmp_path / "run"), echo=lambda _: None)
    if records is not None:
        ctx.results["data"] = DataOutput(folder=records.parent, records=records, count=1, quarantined=0, sources=[])
    cache = HashCache(tmp_path / "fp.json")
    inputs = {label: cache.of(target) for label, target in stage.inputs(ctx).items()}
    return stage_key("train", section_values(cfg, stage.reads, stage.ignores), inputs)


def test_an_rl_stage_that_screens_its_own_files_keys_on_what_the_screen_reads(tmp_path):
    """train.rl._screen reads data.contamination, eval.benchmarks and their files under eval.data_root: an RL stage on
    data.train_files re-runs when they change. SFT, and RL on the data stage's (already screened) records, do not."""
    def mcq(path: Path, question: str) -> Path:  # one MedQA-format item
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"question": question, "options": {"A": "Croup", "B": "Asthma"}, "answer_idx": "A",
                                    "answer": "Croup"}) + "\n")
        return path

    records, bench = tmp_path / "records.jsonl", mcq(tmp_path / "bench.jsonl", "A child with a barking cough?")
    records.write_text('{"id": "r1"}\n')
    empty, root = tmp_path / "empty", tmp_path / "root"
    empty.mkdir()
    medqa = mcq(root / "medqa" / "us_4options_test.jsonl", "Stridor?")
    dpo = [f"data.train_files=[{records}]", "train.stage=dpo"]
    drop = _train_key(tmp_path, *dpo, "data.contamination=drop", "eval.benchmarks=[]", f"eval.data_root={empty}")
    assert _train_key(tmp_path, *dpo, "data.contamination=off", "eval.benchmarks=[]", f"eval.data_root={empty}") != drop
    with_file = _train_key(tmp_path, *dpo, "data.contamination=drop", f"eval.benchmarks=[{bench}]", f"eval.data_root={empty}")
    assert with_file != drop  # a benchmark the screen checks besides the default list
    mcq(bench, "A child with a barking cough and fever?")  # and its file edited: screened again
    assert _train_key(tmp_path, *dpo, "data.contamination=drop", f"eval.benchmarks=[{bench}]", f"eval.data_root={empty}") != with_file
    rooted = _train_key(tmp_path, *dpo, "data.contamination=drop", "eval.benchmarks=[]", f"eval.data_root={root}")
    assert rooted != drop  # a data root where medqa (a default benchmark) can be read
    mcq(medqa, "Inspiratory stridor?")
    assert _train_key(tmp_path, *dpo, "data.contamination=drop", "eval.benchmarks=[]", f"eval.data_root={root}") != rooted
    off = _train_key(tmp_path, *dpo, "data.contamination=off", "eval.benchmarks=[]", f"eval.data_root={empty}")
    assert _train_key(tmp_path, *dpo, "data.contamination=off", f"eval.benchmarks=[{bench}]", f"eval.data_root={root}") == off
    # No screen of the stage's own: the eval section and the data stage's contamination mode stay out of the key.
    sft = [f"data.train_files=[{records}]"]
    plain = _train_key(tmp_path, *sft, "data.contamination=drop", "eval.benchmarks=[]", f"eval.data_root={empty}")
    assert _train_key(tmp_path, *sft, "data.contamination=off", f"eval.benchmarks=[{bench}]", f"eval.data_root={root}",
                      "eval.max_new_tokens=12") == plain
    staged = _train_key(tmp_path, "train.stage=dpo", "eval.benchmarks=[]", f"eval.data_root={empty}", records=records)
    assert _train_key(tmp_path, "train.stage=dpo", f"eval.benchmarks=[{bench}]", f"eval.data_root={root}",
                      "data.contamination=off", records=records) == staged


def test_eval_compares_the_tuned_model_with_the_base_it_was_trained_from(tmp_path, monkeypatch):
    """`--stages eval` after editing model.base must not compare the tuned model with a base it never saw."""
    import medtune.eval.evaluate as evaluate
    from medtune.pipeline.registry import Context, RunLayout
    from medtune.pipeline.results import TrainOutput
    from medtune.pipeline.stages import eval as eval_stage

    run = tmp_path / "train"
    (run / "adapter").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"base_model": "trained-from-base", "stage": "sft"}))
    seen = []

    def fake_compare(base, tuned, records, folder, **_):
        seen.append(base)
        acc = {"n": 1, "accuracy": 1.0, "ci95": [0.2, 1.0]}
        return {"tuned": acc, "base": {"accuracy": 0.0}, "difference_b_minus_a": {"gain": 1.0, "ci95": [0, 1]},
                "mcnemar": {"p_value": 1.0}}

    monkeypatch.setattr(evaluate, "compare_models", fake_compare)
    monkeypatch.setattr("medtune.eval.benchmarks.load_benchmark_records", lambda spec, root, limit=None: [object()])
    cfg = load_config(None, ["model.base=phi-2", "eval.benchmarks=[medqa]", "eval.compare_base=true"])
    ctx = Context(cfg, RunLayout(tmp_path), echo=lambda _: None)
    train = TrainOutput(run_dir=run, output_dir=run / "adapter", steps=1)
    eval_stage._compare(ctx, train, ["medqa"], tmp_path / "eval")
    assert seen == ["trained-from-base"]


def test_eval_compares_with_the_base_revision_it_was_trained_on(tmp_path, monkeypatch, hub_two_revisions):
    """eval.compare_base asks the base the run trained on: its recorded folder while it exists, else (a moved run)
    base_model at base_revision, never the bare spec (which loads whatever the Hub's `main` is now)."""
    import medtune.eval.evaluate as evaluate
    from medtune.pipeline.registry import Context, RunLayout
    from medtune.pipeline.results import TrainOutput
    from medtune.pipeline.stages import eval as eval_stage

    h, seen = hub_two_revisions, []
    monkeypatch.setattr(evaluate, "compare_models", lambda base, *a, **kw: seen.append(base) or {
        "tuned": {"n": 1, "accuracy": 1.0, "ci95": [0.2, 1.0]}, "base": {"accuracy": 0.0},
        "difference_b_minus_a": {"gain": 1.0, "ci95": [0, 1]}, "mcnemar": {"p_value": 1.0}})
    monkeypatch.setattr("medtune.eval.benchmarks.load_benchmark_records", lambda spec, root, limit=None: [object()])
    run = tmp_path / "train"
    (run / "adapter").mkdir(parents=True)
    ctx = Context(load_config(None, ["eval.benchmarks=[medqa]", "eval.compare_base=true"]), RunLayout(tmp_path),
                  echo=lambda _: None)
    train = TrainOutput(run_dir=run, output_dir=run / "adapter", steps=1)
    for base_path in (h["main_dir"], tmp_path / "gone"):
        (run / "manifest.json").write_text(json.dumps({"base_model": h["repo"], "base_revision": h["pinned"],
                                                       "base_path": str(base_path), "stage": "sft"}))
        eval_stage._compare(ctx, train, ["medqa"], tmp_path / "eval")
    assert seen == [str(h["main_dir"]), str(h["pinned_dir"])]


def test_medtune_run_refuses_an_eval_out_dir_it_would_not_write(tmp_path):
    """`medtune run` writes RUN_DIR/eval, where the model card and the run report read it: an eval.out_dir elsewhere
    (once silently ignored) is refused before any stage runs, naming the file and the field; RUN_DIR/eval is fine."""
    from typer.testing import CliRunner

    from medtune.cli.main import app
    from medtune.pipeline import run_pipeline
    from medtune.pipeline.runner import preflight

    run = tmp_path / "run"
    config = tmp_path / "eval-elsewhere.yaml"
    config.write_text(f"run_dir: {run}\nstages: [eval]\neval: {{benchmarks: [dev_vignettes], out_dir: {tmp_path / 'mine'}}}\n")
    with pytest.raises(ConfigError) as exc:
        run_pipeline(load_config(config), echo=lambda _: None, source=str(config))
    assert [p.path for p in exc.value.problems] == ["eval.out_dir"]
    assert str(exc.value).startswith(f"{config}: eval.out_dir: `medtune run` writes the evaluation to RUN_DIR/eval")
    assert not run.exists() and not (tmp_path / "mine").exists()
    res = CliRunner().invoke(app, ["run", str(config)])
    assert res.exit_code == 2 and "eval.out_dir" in res.output and not run.exists()
    preflight(load_config(config, [f"eval.out_dir={run / 'eval'}"]), ["eval"])  # the run folder's own eval folder
