"""The eval stage: the trained model on eval.benchmarks (+ the synth stage's held-out set) -> RUN/eval.

Without ``eval.compare_base`` this is `medtune eval run RUN/train` (``eval.stage.run_eval``);
with it, each benchmark is a base-versus-tuned comparison (``eval.evaluate.compare_models``:
both summaries, the paired gain and McNemar's test) in RUN/eval/<benchmark>-<protocol>/, once per protocol
the benchmark is scored by (eval.protocols, else eval.protocol).
An interrupted stage resumes from the prediction stores it left; changed inputs start it over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config.load import ConfigProblem
from ...config.schema import RunConfig
from ..fingerprint import digest
from ..registry import Context, RunLayout, Stage, register
from ..results import BenchmarkScore, EvalOutput, SynthOutput, TrainOutput


def benchmark_names(cfg: RunConfig, synth: SynthOutput | None) -> list[str]:
    return list(cfg.eval.benchmarks) + ([str(synth.heldout)] if synth and synth.heldout else [])


def _score(name: str, protocol: str, folder: Path, summary: Path, acc: dict[str, Any],
           cmp: dict[str, Any] | None = None) -> BenchmarkScore:
    extra: dict[str, Any] = {}
    if cmp is not None:
        d = cmp["difference_b_minus_a"]
        extra = {"base_accuracy": cmp["base"]["accuracy"], "gain": d["gain"], "gain_ci95": tuple(d["ci95"]),
                 "p_value": cmp["mcnemar"]["p_value"]}
    return BenchmarkScore(name=name, protocol=protocol, folder=folder, summary=summary, n=acc["n"], accuracy=acc["accuracy"],
                          ci95=tuple(acc["ci95"]), unparseable=acc.get("unparseable", 0), **extra)


def _compare(ctx: Context, train: TrainOutput, names: list[str], out: Path) -> list[BenchmarkScore]:
    from ...eval.benchmarks import get_benchmark, load_benchmark_records
    from ...eval.evaluate import compare_models
    from ...eval.stage import prompt_overrides
    from ...train.load import manifest_base, read_manifest

    e, scores = ctx.cfg.eval, []
    trained = read_manifest(train.run_dir)
    # The model it was trained from: a second stage's SFT run, else the base in its manifest at the revision it
    # trained on (not model.base, which may have changed since, e.g. `--stages eval` after editing it: that would
    # compare with another model's base; nor the bare spec, which loads the Hub's current `main`).
    base = trained if trained.get("base_model") else {"base_model": ctx.cfg.model.base, "base_revision": ctx.cfg.model.revision}
    start = trained.get("init_from") or manifest_base(base)
    for name in names:
        spec = get_benchmark(name)
        records = load_benchmark_records(spec, e.data_root, limit=e.limit)
        for protocol in e.protocols_for(spec.name):
            folder = out / f"{spec.name}-{protocol}"
            ctx.echo(f"{spec.name}: {len(records)} items, base {start} vs tuned, protocol {protocol} -> {folder}")
            cmp = compare_models(start, train.run_dir, records, folder, protocol=protocol, spec=spec,
                                 batch_size=e.batch_size, max_new_tokens=e.max_new_tokens, log=ctx.echo,
                                 limit=e.limit, dtype=ctx.cfg.model.dtype, **prompt_overrides(e))
            scores.append(_score(e.result_name(spec.name, protocol), protocol, folder, folder / "compare.json",
                                 cmp["tuned"], cmp))
    return scores


def _run(ctx: Context, resume: bool) -> EvalOutput:
    from ...eval.stage import run_eval

    train = ctx.need(TrainOutput, "eval")
    e, out = ctx.cfg.eval, ctx.layout.folder("eval")
    names = benchmark_names(ctx.cfg, ctx.get(SynthOutput))
    if e.compare_base:
        scores = _compare(ctx, train, names, out)
    else:
        index = run_eval(str(train.run_dir), e.model_copy(update={"benchmarks": names}), out, dtype=ctx.cfg.model.dtype,
                         log=ctx.echo)
        scores = [_score(name, b["protocol"], Path(b["folder"]), Path(b["folder"]) / "summary.json", b["accuracy"])
                  for name, b in index["benchmarks"].items()]
    for s in scores:
        ctx.echo(s.line())
    return EvalOutput(folder=out, protocol=e.protocol, scores=scores)


def _inputs(ctx: Context) -> dict[str, Path | str]:
    from ...eval.benchmarks import get_benchmark, resolve_files

    out: dict[str, Path | str] = {"trained model": ctx.need(TrainOutput, "eval").output_dir}
    for name in benchmark_names(ctx.cfg, ctx.get(SynthOutput)):
        spec = get_benchmark(name)
        for i, f in enumerate(resolve_files(spec, ctx.cfg.eval.data_root)):
            out[f"benchmark {spec.name} file {i}"] = f
        out[f"benchmark {spec.name} declaration"] = "sha256:" + digest(spec.model_dump(mode="json", exclude={"files"}))
    return out


def _out_dir_problems(cfg: RunConfig) -> list[ConfigProblem]:
    """eval.out_dir is `medtune eval run`'s. Here the evaluation is part of the run folder: the export stage's model
    card, the run report and `medtune report RUN` look for it in RUN_DIR/eval, and a re-run moves the old evaluation
    aside and deletes it, which is not a thing to do to a folder named elsewhere. So it is refused, not ignored."""
    out = cfg.eval.out_dir
    run_eval_dir = RunLayout.of(cfg).folder("eval")
    if not out or Path(out).resolve() == run_eval_dir.resolve():
        return []
    return [ConfigProblem("eval.out_dir", f"`medtune run` writes the evaluation to RUN_DIR/eval ({run_eval_dir}), where "
                          f"the model card and the run report read it, not to {out}",
                          "remove eval.out_dir (it is the output folder of `medtune eval run`), or set run_dir to move "
                          "the whole run folder")]


def _preflight(cfg: RunConfig) -> list[ConfigProblem]:
    return _out_dir_problems(cfg) + _benchmark_problems(cfg)


def _benchmark_problems(cfg: RunConfig) -> list[ConfigProblem]:
    from ...eval.benchmarks import BenchmarkError, get_benchmark, resolve_files

    if not cfg.eval.benchmarks and not ("synth" in cfg.stages and cfg.synth.heldout_cases):
        return [ConfigProblem("eval.benchmarks", "the eval stage has nothing to evaluate",
                              "list benchmarks (`medtune eval list`) or record files, set synth.heldout_cases, or drop eval from stages")]
    probs, names = [], ["heldout"] if "synth" in cfg.stages and cfg.synth.heldout_cases else []
    for i, name in enumerate(cfg.eval.benchmarks):
        try:
            spec = get_benchmark(name)
            resolve_files(spec, cfg.eval.data_root)
            names.append(spec.name)
        except BenchmarkError as e:
            probs.append(ConfigProblem(f"eval.benchmarks.{i}", str(e), "check the name, the path or $MEDTUNE_DATA_ROOT"))
    if not probs:
        probs += [ConfigProblem(f"eval.protocols.{k}", f"names no benchmark evaluated here ({', '.join(names)})",
                                "use a name from eval.benchmarks, or heldout for the synth stage's held-out set")
                  for k in cfg.eval.unknown_protocol_keys(names)]
    return probs


register(Stage("eval", EvalOutput, reads=("eval", "model"), run=_run, inputs=_inputs, preflight=_preflight))
