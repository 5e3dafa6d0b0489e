"""`medtune eval run|list|score|compare`: thin wrappers over medtune.eval."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from .common import console, fail

eval_app = typer.Typer(help="Evaluate models on medical benchmarks (loglik or chain-of-thought).", no_args_is_help=True)


@eval_app.command("list")
def list_benchmarks() -> None:
    """List the declared benchmarks (resources/benchmarks/*.yaml)."""
    from ..eval.benchmarks import load_benchmarks

    table = Table("name", "items", "importer", "files (under --data-root)", "harness task", "description")
    for s in load_benchmarks().values():
        table.add_row(s.name, str(s.expected_items or "?"), s.importer, s.files, s.loglik.harness_task or "", s.description)
    console.print(table)


@eval_app.command("run")
def run(
    model: str = typer.Argument(..., help="Preset, HF id, model folder, training run folder, .gguf file, or endpoint model name."),
    benchmark: list[str] = typer.Option(..., "--benchmark", "-b", help="Benchmark name or record file; repeatable."),
    protocol: str = typer.Option("loglik", help="loglik or cot."),
    data_root: str = typer.Option(None, envvar="MEDTUNE_DATA_ROOT", help="Folder holding the benchmark files."),
    out: Path = typer.Option(Path("eval_out"), help="Output folder (resumable)."),
    limit: int = typer.Option(None, help="Only the first N items of each benchmark."),
    backend: str = typer.Option("transformers", help="transformers, llamacpp or openai."),
    endpoint: str = typer.Option(None, help="Base URL of an OpenAI-compatible endpoint (openai backend)."),
    batch_size: int = typer.Option(16, help="loglik: items per forward; cot: rows decoded together (continuous batching)."),
    max_new_tokens: int = typer.Option(256, help="Generation budget (cot)."),
    num_samples: int = typer.Option(1, help="Samples per item; > 1 = majority vote (cot)."),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    permutations: int = typer.Option(0, help="Extra option orders per item (permutation consistency)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, mps."),
) -> None:
    """Evaluate a model; prints accuracy with Wilson 95% intervals and writes reports."""
    from pydantic import ValidationError

    from ..config.sections.eval import EvalSection
    from ..eval.backends import BackendError
    from ..eval.benchmarks import BenchmarkError
    from ..eval.stage import run_eval

    try:
        section = EvalSection(benchmarks=benchmark, protocol=protocol, limit=limit, backend=backend, endpoint=endpoint,
                              batch_size=batch_size, max_new_tokens=max_new_tokens, num_samples=num_samples,
                              temperature=temperature, permutations=permutations, data_root=data_root)
        index = run_eval(model, section, out, device=device, log=console.print)
    except (ValidationError, BenchmarkError, BackendError, ValueError) as e:
        fail(str(e))
    for name, b in index["benchmarks"].items():
        acc = b["accuracy"]
        console.print(f"{name}: accuracy {acc['accuracy']:.4f} (95% CI {acc['ci95'][0]}-{acc['ci95'][1]}, n={acc['n']}, "
                      f"unparseable {acc.get('unparseable', 0)}; chance {b['chance']}) -> {b['folder']}/report.html")


@eval_app.command("score")
def score(
    outputs: Path = typer.Argument(..., help="JSONL with one {id, output} object per line."),
    items: Path = typer.Option(..., help="Benchmark/items file any importer reads."),
    format: str = typer.Option("auto", "--format", help="Importer for --items (auto-detected by default)."),
    out: Path = typer.Option(None, help="Write per-item extraction rows here (JSONL)."),
    reasoning_format: str = typer.Option(None, help="think, sections or plain (default: detect markers)."),
) -> None:
    """Score outputs produced elsewhere with the strict extractor; loads no model."""
    from ..data.importers import DataError
    from ..eval.score import ScoreError, score_outputs

    try:
        s = score_outputs(outputs, items, fmt=format, out=out, reasoning_format=reasoning_format, log=console.print)
    except (ScoreError, DataError) as e:
        fail(str(e))
    console.print(f"accuracy {s['accuracy']:.4f} (95% CI {s['ci95'][0]}-{s['ci95'][1]}, n={s['n']}); "
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
    console.print(f"{r['items']} common items: A {r['accuracy_a']['accuracy']:.4f}, B {r['accuracy_b']['accuracy']:.4f}, "
                  f"gain {d['gain']:+.4f} (95% CI {d['ci95'][0]} to {d['ci95'][1]}), McNemar p = {m['p_value']:.4g} -> {out}/compare.html")


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
