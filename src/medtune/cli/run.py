"""`medtune run CONFIG [overrides] [--stages a,b] [--from STAGE] [--force]`: the whole chain from one config."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from .common import console, fail, user_errors
from .options import CONFIG_HELP, OVERRIDES_HELP, with_env_data_root

if TYPE_CHECKING:
    from ..pipeline import PipelineResult


def echo(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def print_summary(result: PipelineResult) -> None:
    from ..pipeline import EvalOutput, ExportOutput, ServeOutput

    table = Table("stage", "action", "why", "seconds", title=f"medtune run: {result.run_dir}")
    for o in result.outcomes:
        table.add_row(o.stage, o.action, o.reason, f"{o.seconds:.1f}")
    console.print(table)
    ev, ex, sv = result.get(EvalOutput), result.get(ExportOutput), result.get(ServeOutput)
    for score in ev.scores if ev else []:
        echo(score.line())
    if ex:
        echo("export: " + ", ".join(f"{p} ({ex.checks.get(q, 'unverified')})" for q, p in ex.files.items()))
    if sv:
        echo(f"serve it with: {shlex.join(sv.command)}")


def write_report(result: PipelineResult) -> Path | None:
    """RUN/report.html (``medtune.report.write_run_report``) after the last stage, skipped stages included;
    prints its path. A run with nothing to report yet (no training, evaluation or export) says so."""
    from ..report import ReportError, write_run_report

    try:
        path = write_run_report(result.run_dir, result.run_dir / "report.html")
    except ReportError as e:
        echo(f"no report yet: {e}")
        return None
    echo(f"report: {path} ({path.stat().st_size / 2**20:.1f} MiB; opens offline in any browser)")
    return path


def run_command(
    config: Path = typer.Argument(..., help=CONFIG_HELP),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    stages: str = typer.Option(None, "--stages", help="Run only these of the config's stages (comma-separated); the others "
                               "hand on their last complete output."),
    start: str = typer.Option(None, "--from", help="Run the config's stages from this one on."),
    force: bool = typer.Option(False, "--force", help="Run the selected stages even when they are up to date."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Run the stages the config declares (synth, data, train, eval, export, serve) in order.

    Each stage's manifest (RUN/stages/<stage>.json) records the hashes of its config section and inputs, its outputs, timings and versions. A stage whose section and inputs are unchanged is skipped ("up to date"); an interrupted one resumes (training from its newest complete checkpoint, evaluation from its prediction store). At the end, RUN/report.html: the self-contained HTML report of the run.
    """
    from ..config import load_config
    from ..pipeline import run_pipeline

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with user_errors():
        cfg = with_env_data_root(load_config(config, list(overrides or [])))
        only = [s.strip() for s in stages.split(",") if s.strip()] if stages is not None else None
        if only == []:  # `--stages ,` or `--stages ""`: an empty list would mean every stage
            fail("--stages names no stage: give one or more of the config's stages, comma-separated")
        result = run_pipeline(cfg, only=only, start=start, force=force, echo=echo, progress=not quiet, source=str(config))
    print_summary(result)
    write_report(result)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
