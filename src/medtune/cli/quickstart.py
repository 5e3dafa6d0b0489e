"""`medtune quickstart`."""

from __future__ import annotations

from pathlib import Path

import typer


def quickstart(
    out: Path = typer.Option(Path("runs/quickstart"), "--out", help="Run folder."),
    overrides: list[str] = typer.Option(None, "--set", help="Override the quickstart recipe, e.g. --set train.max_steps=20"),
) -> None:
    """Run the whole chain on the embedded SmolLM2-135M on this machine (CPU is fine)."""
    from ..quickstart import run_quickstart

    run_quickstart(out, echo=typer.echo, overrides=overrides or [])


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
