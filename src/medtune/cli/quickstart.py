"""`medtune quickstart [overrides] [--out RUN_DIR]`."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import user_errors
from .options import OVERRIDES_HELP


def quickstart(
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP + " E.g. train.max_steps=20."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: runs/quickstart, the recipe's)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Run the whole chain on the embedded SmolLM2-135M on this machine (CPU is fine): `medtune run` on the
    packaged quickstart recipe, with the base and the tuned model's answers to two demo questions; RUN/report.html at the end."""
    import logging

    from ..quickstart import run_quickstart
    from .run import echo, print_summary, write_report

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with user_errors():
        result = run_quickstart(out, echo=echo, overrides=list(overrides or []), progress=not quiet)
    print_summary(result.pipeline)
    write_report(result.pipeline)


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
