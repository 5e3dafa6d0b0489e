"""`medtune merge RUN [--out DIR]`: adapter + base -> standalone HF folder."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console


def merge(
    run: Path = typer.Argument(..., help="Run folder (RUN/adapter or RUN/model)."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default RUN/merged)."),
) -> None:
    """Merge a LoRA/DoRA adapter into its base model (fp32) and save safetensors + tokenizer + chat template."""
    from ..export import ExportError, merge_run

    try:
        path = merge_run(run, out)
    except ExportError as e:
        _fail(str(e))
    console.print(f"merged model: {path}")


def register(app: typer.Typer) -> None:
    app.command("merge")(merge)


def _fail(message: str) -> None:
    """Plain one-line error on stderr, exit 2 (no rich markup: `medtune[gguf]` must print as is)."""
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)
