"""`medtune report RUN_OR_EVAL_DIR`: the self-contained HTML report of a run or evaluation folder."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, fail


def report(
    folder: Path = typer.Argument(..., help="A run folder (train/, eval/, export/ ...), an evaluation folder or a comparison folder."),
    out: Path = typer.Option(None, "--out", "-o", help="Where to write the HTML file (default: FOLDER/report.html)."),
) -> None:
    """Write one self-contained HTML report (no network needed to open it): run card, curves, evaluations, item browser."""
    from ..report import ReportError, write_run_report

    try:
        path = write_run_report(folder, out)
    except ReportError as e:
        fail(str(e))
    console.print(f"report: {path} ({path.stat().st_size / 2**20:.1f} MiB); open it in any browser, offline")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
