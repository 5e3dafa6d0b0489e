"""`medtune eval run|list|score|compare`: thin wrappers over medtune.eval."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from .common import console, fail, user_errors
from .options import command_config, config_option, field_option, split_args, with_field_options

if TYPE_CHECKING:
    from ..eval.benchmarks import BenchmarkSpec

eval_app = typer.Typer(help="Evaluate models on medical benchmarks (loglik or chain-of-thought).", no_args_is_help=True)


@eval_app.command("list")
def list_benchmarks() -> None:
    """List the declared benchmarks (resources/benchmarks/*.yaml)."""
    from ..eval.benchmarks import load_benchmarks

    table = Table("name", "items", "importer", "files", "harness task", "description")
    for s in load_benchmarks().values():
        table.add_row(s.name, str(s.expected_items or "?"), s.importer, benchmark_files(s), s.loglik.harness_task or "",
                      s.description)
    console.print(table)


def benchmark_files(spec: BenchmarkSpec) -> str:
    """Where a benchmark's files are: inside the package, or under the data root (--data-root / $MEDTUNE_DATA_ROOT)."""
    return f"{spec.files} (packaged with medtune)" if spec.packaged else f"DATA_ROOT/{spec.files}"


@eval_app.command("run")
@with_field_options(("eval.benchmarks", "--benchmark", "-b"), "eval.protocol", "eval.data_root", ("eval.out_dir", "--out"),
                    "eval.limit", "eval.backend", "eval.endpoint", "eval.batch_size", "eval.max_new_tokens",
                    "eval.num_samples", "eval.temperature", "eval.permutations", "eval.reasoning_format",
                    "eval.system_prompt", hints={"eval.benchmarks": " Repeatable."})
def run(
    args: list[str] = typer.Argument(None, help="MODEL: a preset, HF id, model folder, training run folder, .gguf file or "
                                     "endpoint model name (with -c the default is the run's RUN_DIR/train); then dotted overrides."),
    config: Path = config_option(),
    device: str = typer.Option("auto", help="auto, cpu, cuda, mps."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard the predictions already in the output folder and "
                                   "start over (without it, rows of another model, prompt or decoding are refused)."),
    **flags: Any,
) -> None:
    """Evaluate a model; prints accuracy with Wilson 95% intervals and writes reports."""
    from ..eval.stage import run_eval
    from ..pipeline import RunLayout

    models, overrides = split_args(args)
    with user_errors():
        cfg = command_config(run, config, overrides, flags)
        layout = RunLayout.of(cfg) if config else None
        if len(models) > 1:
            fail(f"one MODEL at a time (got {models}); overrides look like section.field=value")
        model = models[0] if models else (str(layout.folder("train")) if layout else None)
        if model is None:
            fail("give MODEL (or -c CONFIG to evaluate its run's trained model)")
        target = Path(cfg.eval.out_dir) if cfg.eval.out_dir else (layout.folder("eval") if layout else Path("eval_out"))
        if cfg.eval.compare_base:
            console.print("eval.compare_base: the base-vs-tuned comparison runs in `medtune run`; here only MODEL is evaluated")
        index = run_eval(model, cfg.eval, target, device=device, dtype=cfg.model.dtype, log=console.print,
                         overwrite=overwrite)
    for name, b in index["benchmarks"].items():
        acc = b["accuracy"]
        console.print(f"{name} ({b['protocol']}): {accuracy_text(acc)}, unparseable {acc.get('unparseable', 0)}; "
                      f"chance {b['chance']}) -> {b['folder']}/report.html")


def accuracy_text(acc: dict[str, Any]) -> str:
    """'accuracy 0.3000 (95% CI 0.219-0.396, n=100' of an accuracy summary; 'no scorable items (n=0' without items."""
    if acc["accuracy"] is None:
        return f"no scorable items (n={acc['n']}"
    return f"accuracy {acc['accuracy']:.4f} (95% CI {acc['ci95'][0]}-{acc['ci95'][1]}, n={acc['n']}"


@eval_app.command("score")
def score(
    outputs: Path = typer.Argument(..., help="JSONL with one {id, output} object per line."),
    items: Path = typer.Option(..., help="Benchmark/items file any importer reads."),
    format: str = typer.Option("auto", "--format", help="Importer for --items (auto-detected by default)."),
    out: Path = typer.Option(None, help="Write per-item extraction rows here (JSONL)."),
    reasoning_format: str = field_option("eval.reasoning_format", "--reasoning-format", apply=False,
                                         hint=" Here, with no model to ask, auto = detect the markers in each output."),
) -> None:
    """Score outputs produced elsewhere with the strict extractor; loads no model."""
    from ..data.importers import DataError
    from ..eval.score import ScoreError, score_outputs

    try:
        s = score_outputs(outputs, items, fmt=format, out=out, log=console.print,
                          reasoning_format=None if reasoning_format in (None, "auto") else reasoning_format)
    except (ScoreError, DataError) as e:
        fail(str(e))
    console.print(f"{accuracy_text(s)}); "
                  f"unparseable {s['unparseable']} (counted wrong: {s['by_status']['unparseable']} unparseable, "
                  f"{s['by_status']['conflicting']} conflicting); items without output {s['missing']}; quarantined {s['quarantined']}")
    if out:
        console.print(f"per-item extraction -> {out}")


@eval_app.command("compare")
def compare(
    run_a: Path = typer.Argument(..., help="Evaluation folder A (has predictions.jsonl and summary.json)."),
    run_b: Path = typer.Argument(..., help="Evaluation folder B."),
    out: Path = typer.Option(Path("eval_compare"), help="Folder for compare.json/.md/.html."),
) -> None:
    """Paired comparison of two evaluations on their common items (McNemar), side by side."""
    from ..eval.report import compare_runs

    for d in (run_a, run_b):
        if not (d / "predictions.jsonl").is_file() or not (d / "summary.json").is_file():
            fail(f"{d}: not an evaluation folder (needs predictions.jsonl and summary.json from `medtune eval run`)")
    try:
        r = compare_runs(run_a, run_b, out)
    except ValueError as e:
        fail(str(e))
    d, m = r["difference_b_minus_a"], r["mcnemar"]
    console.print(f"{r['items']} common items paired ({protocols_text(r)}): A {r['accuracy_a']['accuracy']:.4f}, "
                  f"B {r['accuracy_b']['accuracy']:.4f}, gain {d['gain']:+.4f} (95% CI {d['ci95'][0]} to {d['ci95'][1]}, "
                  f"{d['method']}), McNemar p = {m['p_value']:.4g} -> {out}/compare.html")
    for warning in r["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")


def protocols_text(result: dict[str, Any]) -> str:
    """'protocol cot' when both sides of a comparison name one protocol, else each side's ('not recorded' when missing)."""
    a, b = result["protocol_a"] or "not recorded", result["protocol_b"] or "not recorded"
    return f"protocol {a}" if a == b else f"protocols A {a}, B {b}"


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
