"""`medtune export RUN|MERGED --gguf f16,q8_0,...` and `medtune export verify GGUF... [--against MERGED]`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from ..config.sections.export import ExportSection
from .common import console

DEFAULTS = ExportSection()


def _verify_table(rows: list[dict]) -> Table:
    table = Table("file", "type", "MB", "exact prompts", "agreement", "flips", "margin/band", "Δppl", "template", "result")
    for r in rows:
        result = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: "reported"}[r["passed"]]
        table.add_row(Path(r["gguf"]).name, r["type"], f"{r['bytes'] / 2**20:.1f}", f"{r['exact_prompts']}/{r['prompts']}",
                      f"{r['agreement']:.3f}", str(r["flips"]), f"{r['max_flip_margin']:.3f}/{r['tie_band'] or '-'}",
                      f"{r['ppl_delta'] / r['ppl_hf']:+.2%}",
                      "ok" if r["chat_template_roundtrip"] and r["tokenizer_roundtrip"] else "MISMATCH", result)
    return table


def _run_verify(paths: list[Path], against: Path | None) -> None:
    from ..export.verify import verify_ggufs

    if not paths:
        _fail("export verify: give at least one .gguf file")
    if against is None:
        candidates = [p.parent / "merged" for p in paths if (p.parent / "merged" / "config.json").is_file()]
        if not candidates:
            _fail(f"export verify: no merged HF folder next to {paths[0]}; pass --against MERGED")
        against = candidates[0]
    rows = verify_ggufs(paths, against)
    console.print(_verify_table(rows))
    console.print("protocol: 32 greedy tokens per fixed prompt; agreement = teacher-forced top-1 vs the HF model (fp32); "
                  "a flip fails only if HF's margin (in logit std units) exceeds the type's tie band (docs/export.md).")
    if any(r["passed"] is False for r in rows):
        raise typer.Exit(1)


def export(
    target: Path = typer.Argument(..., help="Run folder, merged HF folder, or the word `verify`."),
    paths: list[Path] | None = typer.Argument(None, help="With `verify`: the GGUF files to check."),
    gguf: str = typer.Option(",".join(DEFAULTS.gguf), "--gguf", help="Comma-separated: f16, bf16, q8_0, q4_k_m, q5_k_m."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default RUN/export)."),
    verify: bool = typer.Option(DEFAULTS.verify, "--verify/--no-verify", help=ExportSection.model_fields["verify"].description),
    against: Path | None = typer.Option(None, "--against", help="With `verify`: the merged HF folder to compare with."),
) -> None:
    """Export to GGUF (+ Modelfile, model card), or `export verify GGUF...` to check files against the HF model."""
    from ..export import ExportError, export_run

    try:
        if str(target) == "verify":
            _run_verify(list(paths or []), against)
            return
        if paths:
            _fail(f"unexpected extra arguments {[str(p) for p in paths]}; use --gguf a,b for several types")
        summary = export_run(target, out, gguf, verify=verify, modelfile=DEFAULTS.ollama, model_card=DEFAULTS.model_card)
    except ExportError as e:
        _fail(str(e))
    for q, f in summary["files"].items():
        console.print(f"{q:>7}: {f['path']} ({f['bytes'] / 2**20:.1f} MB)")
    if summary["verify"]:
        console.print(_verify_table(summary["verify"]))
    if summary.get("verify_skipped"):
        console.print(f"[yellow]unverified:[/yellow] {summary['verify_skipped']}")
    for key in ("modelfile", "model_card"):
        if key in summary:
            console.print(f"{key}: {summary[key]}")
    console.print(f"timings: {json.dumps(summary['timings'])}")
    if summary["passed"] is False:  # None (unverified, or K-quants reported only) is not a failure
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def _fail(message: str) -> None:
    """Plain one-line error on stderr, exit 2 (no rich markup: `medtune[gguf]` must print as is)."""
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)
