"""Evaluation identity: a folder's rows are only ever resumed by the same model, prompt, decoding and benchmark."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from evalkit import make_mcq, make_run

from medtune.config.sections.eval import EvalSection
from medtune.eval import identity
from medtune.eval.backends import BackendError
from medtune.eval.evaluate import compare_models, evaluate
from medtune.eval.stage import run_eval
from medtune.eval.store import EvalIdentityError, PredictionStore
from medtune.utils import hashcache

QUIET = {"log": lambda *_: None}


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "heldout.jsonl"
    path.write_text("".join(r.model_dump_json() + "\n" for r in make_mcq(6)))
    return path


def _section(bench: Path, **kw) -> EvalSection:
    return EvalSection(benchmarks=[str(bench)], batch_size=4, **kw)


def test_second_model_into_the_same_folder_is_refused_naming_what_differs(tiny_model_dir, two_runs, heldout, tmp_path,
                                                                          monkeypatch):
    """The issue's report: base into O, then the tuned run into O printed 'resuming' and the base's accuracy."""
    run_eval(str(tiny_model_dir), _section(heldout), tmp_path, device="cpu", **QUIET)
    preds = tmp_path / "heldout-loglik" / "predictions.jsonl"
    before = preds.read_bytes()
    fingerprint = json.loads((tmp_path / "heldout-loglik" / "fingerprint.json").read_text())
    assert fingerprint["model"]["identity"].startswith("sha256:") and fingerprint["protocol"] == "loglik"
    with monkeypatch.context() as m:
        import medtune.eval.stage

        m.setattr(medtune.eval.stage, "build_backend", lambda *a, **k: pytest.fail("model loaded before the refusal"))
        with pytest.raises(EvalIdentityError) as e:
            run_eval(str(two_runs[0]), _section(heldout), tmp_path, device="cpu", **QUIET)
    msg = str(e.value)
    assert "6 predictions of a different evaluation" in msg and f"(model {tiny_model_dir})" in msg
    assert "model.identity: sha256:" in msg and "--overwrite" in msg and "--out" in msg
    assert "benchmark" not in msg and "decoding" not in msg  # only what differs is named
    assert preds.read_bytes() == before  # nothing appended, nothing lost

    index = run_eval(str(two_runs[0]), _section(heldout), tmp_path, device="cpu", overwrite=True, **QUIET)
    fresh = run_eval(str(two_runs[0]), _section(heldout), tmp_path / "fresh", device="cpu", **QUIET)
    rows = PredictionStore(preds).load()
    clean = PredictionStore(tmp_path / "fresh" / "heldout-loglik" / "predictions.jsonl").load()
    assert [r["option_logprobs"] for r in rows] == [r["option_logprobs"] for r in clean]
    assert index["benchmarks"]["heldout"]["accuracy"] == fresh["benchmarks"]["heldout"]["accuracy"]


def test_changing_only_max_new_tokens_is_refused_then_starts_fresh_on_overwrite(tiny_model_dir, heldout, tmp_path):
    run_eval(str(tiny_model_dir), _section(heldout, protocol="cot", max_new_tokens=3), tmp_path, device="cpu", **QUIET)
    with pytest.raises(EvalIdentityError) as e:
        run_eval(str(tiny_model_dir), _section(heldout, protocol="cot", max_new_tokens=5), tmp_path, device="cpu", **QUIET)
    diff_lines = [line.strip() for line in str(e.value).splitlines() if line.startswith("  ")]
    assert diff_lines == ["decoding.max_new_tokens: 3 -> 5"]
    run_eval(str(tiny_model_dir), _section(heldout, protocol="cot", max_new_tokens=5), tmp_path, device="cpu",
             overwrite=True, **QUIET)
    fp = json.loads((tmp_path / "heldout-cot" / "fingerprint.json").read_text())
    assert fp["decoding"]["max_new_tokens"] == 5
    summary = json.loads((tmp_path / "heldout-cot" / "summary.json").read_text())
    assert summary["settings"]["max_new_tokens"] == 5 and summary["accuracy"]["n"] == 6


def test_same_evaluation_resumes_and_loglik_ignores_decoding(tiny_model_dir, heldout, tmp_path):
    run_eval(str(tiny_model_dir), _section(heldout), tmp_path, device="cpu", **QUIET)
    lines: list[str] = []
    # max_new_tokens does not shape loglik numbers: not part of its fingerprint, so this resumes
    run_eval(str(tiny_model_dir), _section(heldout, max_new_tokens=99), tmp_path, device="cpu", log=lines.append)
    assert any("resuming the same evaluation" in x and "6 items already" in x and "0 to go" in x for x in lines)
    assert len(PredictionStore(tmp_path / "heldout-loglik" / "predictions.jsonl").load()) == 6


def test_rows_of_another_precision_are_refused_before_the_model_loads(tiny_model_dir, heldout, tmp_path, monkeypatch):
    """Auto precision is bf16 on a CPU with native bf16 and fp32 elsewhere: the same model's rows
    from the two are different numbers, so they are not mixed either."""
    import medtune.eval.stage
    import medtune.models.precision as precision

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda *a: ())
    run_eval(str(tiny_model_dir), _section(heldout), tmp_path, device="cpu", **QUIET)
    fp = json.loads((tmp_path / "heldout-loglik" / "fingerprint.json").read_text())
    assert fp["model"]["dtype"] == "float32"
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda *a: ("amx_bf16",))
    with monkeypatch.context() as m:
        m.setattr(medtune.eval.stage, "build_backend", lambda *a, **k: pytest.fail("model loaded before the refusal"))
        with pytest.raises(EvalIdentityError) as e:
            run_eval(str(tiny_model_dir), _section(heldout), tmp_path, device="cpu", **QUIET)
    assert [x.strip() for x in str(e.value).splitlines() if x.startswith("  ")] == ["model.dtype: 'float32' -> 'bfloat16'"]
    run_eval(str(tiny_model_dir), _section(heldout), tmp_path / "bf16", device="cpu", **QUIET)
    summary = json.loads((tmp_path / "bf16" / "heldout-loglik" / "summary.json").read_text())
    assert summary["settings"]["dtype"] == "bfloat16"


def test_changed_benchmark_file_is_refused(tiny_model_dir, heldout, tmp_path):
    bench = tmp_path / "heldout.jsonl"
    shutil.copy(heldout, bench)
    run_eval(str(tiny_model_dir), _section(bench), tmp_path / "out", device="cpu", **QUIET)
    bench.write_text(bench.read_text().replace("fever", "cough"))
    with pytest.raises(EvalIdentityError, match=r"benchmark.source_sha256: \w{12} -> \w{12}\n"):
        run_eval(str(tiny_model_dir), _section(bench), tmp_path / "out", device="cpu", **QUIET)


def test_fingerprint_is_written_before_the_first_row_and_old_folders_are_refused(tiny_model_dir, tmp_path):
    from medtune.eval.backends import build_backend

    backend = build_backend(str(tiny_model_dir), batch_size=4, device="cpu")
    spec = __import__("medtune.eval.benchmarks", fromlist=["x"]).BenchmarkSpec(name="h", files="-")

    def crash(requests):
        raise KeyboardInterrupt

    real, backend.score_choices = backend.score_choices, crash
    with pytest.raises(KeyboardInterrupt):
        evaluate(backend, spec, make_mcq(4), tmp_path / "a", write_report=False, **QUIET)
    assert (tmp_path / "a" / "fingerprint.json").is_file() and not PredictionStore(tmp_path / "a" / "predictions.jsonl").load()
    backend.score_choices = real
    # a folder with a fingerprint but no rows is free: nothing can be mixed
    evaluate(backend, spec, make_mcq(4), tmp_path / "a", write_report=False, system_prompt="Be brief.", **QUIET)
    # predictions from before fingerprints: nothing says which model made them
    (tmp_path / "a" / "fingerprint.json").unlink()
    with pytest.raises(EvalIdentityError, match="4 predictions without a fingerprint.json"):
        evaluate(backend, spec, make_mcq(4), tmp_path / "a", write_report=False, **QUIET)


def test_a_run_is_asked_with_its_training_system_prompt_and_format(tiny_model_dir, heldout, tmp_path):
    run = make_run(tiny_model_dir, tmp_path / "run", 3)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(system_prompt="You are a careful clinician.", reasoning_format="think")
    (run / "manifest.json").write_text(json.dumps(manifest))
    for protocol in ("loglik", "cot"):
        run_eval(str(run), _section(heldout, protocol=protocol, max_new_tokens=2), tmp_path / "ev", device="cpu", **QUIET)
        rows = PredictionStore(tmp_path / "ev" / f"heldout-{protocol}" / "predictions.jsonl").load()
        assert all(r["prompt"].startswith("<|im_start|>system\nYou are a careful clinician.<|im_end|>") for r in rows)
        summary = json.loads((tmp_path / "ev" / f"heldout-{protocol}" / "summary.json").read_text())
        assert summary["prompt"] == {"system_prompt": "You are a careful clinician.", "reasoning_format": "think",
                                     "from": "reasoning format: training run manifest; system prompt: training run manifest"}
    assert rows[0]["prompt"].count("<think>") == 0  # cot: the model writes the reasoning; loglik pre-fills it
    loglik = PredictionStore(tmp_path / "ev" / "heldout-loglik" / "predictions.jsonl").load()
    assert loglik[0]["prompt"].endswith("<think>\n\n</think>\n\nThe answer is (")
    # an explicit override wins ("" = no system prompt), and is another evaluation than the manifest's
    with pytest.raises(EvalIdentityError, match="prompt.system_prompt: 'You are a careful clinician.' -> null"):
        run_eval(str(run), _section(heldout, system_prompt=""), tmp_path / "ev", device="cpu", **QUIET)
    run_eval(str(run), _section(heldout, system_prompt=""), tmp_path / "ev2", device="cpu", **QUIET)
    rows = PredictionStore(tmp_path / "ev2" / "heldout-loglik" / "predictions.jsonl").load()
    assert rows[0]["prompt"].startswith("<|im_start|>user")


def test_a_moved_run_is_identified_with_the_base_revision_it_trained_on(tiny_model_dir, hub_two_revisions, tmp_path):
    """Its recorded base folder gone, a run (and its base, for the model card's pairing) is the base_model at its
    base_revision: two revisions of one spec are two models, and neither is the Hub's current `main`."""
    h = hub_two_revisions
    run = make_run(tiny_model_dir, tmp_path / "run", 3)
    ids = {}
    for revision in ("main", "pinned"):
        manifest = {"base_model": h["repo"], "base_revision": h[revision], "base_path": str(tmp_path / "gone"),
                    "method": "lora"}
        (run / "manifest.json").write_text(json.dumps(manifest))
        ids[revision] = identity.run_identities(run)
        assert ids[revision][1] == f"sha256:{identity.folder_digest(h[revision + '_dir'])}"
    assert ids["main"][0] != ids["pinned"][0] and ids["main"][1] != ids["pinned"][1]


def test_quickstart_rerun_with_another_tuned_model_starts_its_eval_over(tiny_model_dir, heldout, two_runs, tmp_path):
    """The quickstart's case through `medtune run`: a re-run that trains another adapter evaluates it afresh (the
    old adapter's rows are never resumed); a plain compare of another model into that folder is refused."""
    from medtune.config import load_config
    from medtune.pipeline import EvalOutput, run_pipeline

    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(r.model_dump_json() + "\n" for r in make_mcq(16, seed=3)))
    overrides = [f"model.base={tiny_model_dir}", "stages=[train,eval]", f"data.train_files=[{train_file}]",
                 "data.max_length=512", "train.max_steps=2", "train.save_steps=0", "train.learning_rate=0.05",
                 f"eval.benchmarks=[{heldout}]", "eval.compare_base=true", "eval.protocol=cot", "eval.max_new_tokens=8",
                 f"run_dir={tmp_path / 'qs'}"]
    first = run_pipeline(load_config(None, overrides), echo=lambda _: None, progress=False)
    folder = first.get(EvalOutput).scores[0].folder
    identity_of = lambda: json.loads((folder / "tuned" / "fingerprint.json").read_text())["model"]["identity"]  # noqa: E731
    old = identity_of()
    from medtune.eval.benchmarks import get_benchmark, load_benchmark_records

    spec = get_benchmark(str(heldout))
    records = load_benchmark_records(spec)
    with pytest.raises(EvalIdentityError, match="model.identity"):
        compare_models(str(tiny_model_dir), two_runs[1], records, folder, protocol="cot", max_new_tokens=8, spec=spec,
                       batch_size=16, device="cpu", **QUIET)
    lines: list[str] = []
    again = run_pipeline(load_config(None, [*overrides, "train.seed=7"]), echo=lines.append, progress=False)
    assert [o.action for o in again.outcomes] == ["ran", "ran"]
    assert not any("resuming" in line for line in lines) and identity_of() != old
    clean = compare_models(str(tiny_model_dir), tmp_path / "qs" / "train", records, tmp_path / "clean", protocol="cot",
                           max_new_tokens=8, spec=spec, batch_size=16, device="cpu", **QUIET)
    tuned = PredictionStore(folder / "tuned" / "predictions.jsonl").load()
    assert len(tuned) == 6 and [r["raw_output"] for r in tuned] == [
        r["raw_output"] for r in PredictionStore(tmp_path / "clean" / "tuned" / "predictions.jsonl").load()]
    assert again.get(EvalOutput).scores[0].accuracy == clean["tuned"]["accuracy"]


def test_file_hashes_are_cached_by_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTUNE_HOME", str(tmp_path / "home"))
    calls = []
    real = hashcache.sha256_file
    monkeypatch.setattr(hashcache, "sha256_file", lambda p: calls.append(p) or real(p))
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x01" * 1000)
    first = identity.cached_sha256(weights)
    assert identity.cached_sha256(weights) == first and len(calls) == 1  # read once
    weights.write_bytes(b"\x02" * 1001)
    assert identity.cached_sha256(weights) != first and len(calls) == 2  # a changed file is hashed again


def test_endpoint_models_are_identified_by_url_and_served_name(heldout):
    from medtune.eval.benchmarks import get_benchmark

    a = identity.describe_model("med-8b", backend="openai", endpoint="http://gpu:8000/v1")
    b = identity.describe_model("med-8b", backend="openai", endpoint="http://other:8000/v1")
    assert a.identity == "endpoint http://gpu:8000/v1 model med-8b" and a.chat_template_sha256 is None
    spec = get_benchmark(str(heldout))
    diff = identity.fingerprint_diff(identity.build_fingerprint(a, protocol="cot", spec=spec, benchmark_sha256="x"),
                                     identity.build_fingerprint(b, protocol="cot", spec=spec, benchmark_sha256="x"))
    assert diff == [("model.identity", a.identity, b.identity)]
    with pytest.raises(BackendError, match="needs --endpoint"):
        identity.describe_model("med-8b", backend="openai")


def test_sampled_rows_name_how_they_were_drawn_and_greedy_rows_do_not():
    """Sampled rows drawn by the old one-generator-per-batch rule are other draws under the same seed: a store of
    them must not be resumed with per-sample draws; greedy stores stay valid."""
    from medtune.eval.benchmarks import BenchmarkSpec
    from medtune.eval.identity import SAMPLER, Decoding, EvalModel, build_fingerprint

    model = EvalModel(spec="m", identity="m", backend="transformers", reasoning_format="plain", system_prompt=None,
                      chat_template_sha256="t", prompt_source="test")
    spec = BenchmarkSpec(name="b", files="-", description="d")
    sampled = build_fingerprint(model, protocol="cot", spec=spec, benchmark_sha256="x", decoding=Decoding(temperature=0.7))
    greedy = build_fingerprint(model, protocol="cot", spec=spec, benchmark_sha256="x", decoding=Decoding())
    assert sampled["decoding"]["sampler"] == SAMPLER and "sampler" not in greedy["decoding"]


def test_llamacpp_and_openai_rows_name_their_backends_decoding():
    """llama.cpp's own truncations and repeat penalty were on until 2026-12-05 (greedy answers too): a store decoded
    that way must not be resumed with rows decoded the new way, so the fingerprint names the decoding."""
    from medtune.eval.benchmarks import BenchmarkSpec
    from medtune.eval.identity import BACKEND_SAMPLERS, Decoding, EvalModel, build_fingerprint

    spec = BenchmarkSpec(name="b", files="-", description="d")

    def fingerprint(backend, **decoding):
        model = EvalModel(spec="m", identity="m", backend=backend, reasoning_format="plain", system_prompt=None,
                          chat_template_sha256="t", prompt_source="test")
        return build_fingerprint(model, protocol="cot", spec=spec, benchmark_sha256="x", decoding=Decoding(**decoding))

    assert fingerprint("llamacpp")["decoding"]["sampler"] == BACKEND_SAMPLERS["llamacpp"]  # greedy too
    assert fingerprint("openai", temperature=0.7)["decoding"]["sampler"] == BACKEND_SAMPLERS["openai"]
    assert "sampler" not in fingerprint("openai")["decoding"] and "sampler" not in fingerprint("transformers")["decoding"]


def test_a_medtune_gguf_is_evaluated_in_the_format_its_run_trained_with(tmp_path):
    """eval's llama.cpp backend asked every GGUF `plain` (loglik's cue without "## Final Response"), even one whose
    metadata says its run trained in sections; a GGUF without medtune metadata is still asked plain."""
    from tiny import write_gguf_metadata

    from medtune.eval.identity import describe_model

    for fmt in ("sections", None):
        path = tmp_path / f"m-{fmt}.gguf"
        write_gguf_metadata(path, {"medtune.reasoning_format": fmt} if fmt else {})
        model = describe_model(str(path), backend="llamacpp")
        assert model.reasoning_format == (fmt or "plain")
        assert f"reasoning format: {'GGUF metadata' if fmt else 'model default'}" in model.prompt_source
