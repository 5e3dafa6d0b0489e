"""`medtune train -c config.yaml [overrides] [--data RECORDS] [--out RUN_DIR] [--resume]`."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from .common import console, user_errors
from .options import OVERRIDES_HELP, command_config, config_option, field_option


def train_command(
    config: Path = config_option(),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    data: list[str] = field_option("data.train_files", "--data", apply=False,
                                   hint=" Repeatable; given here, it replaces data.sources and data.train_files."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: run_dir from the config, else runs/<name>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest complete checkpoint in the run folder."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Fine-tune a base model (LoRA / QLoRA / DoRA / rsLoRA / full) on medtune records.

    Multi-GPU / multi-process: `accelerate launch --config_file configs/accelerate/ddp.yaml -m medtune train -c ...`.
    """
    from ..config.load import ConfigError, ConfigProblem
    from ..train import train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with user_errors():
        cfg = command_config(train_command, config, list(overrides or []), locals(), check_hardware=True)
        if not data and not cfg.data.train_files and cfg.data.sources:
            raise ConfigError([ConfigProblem("data.sources", "`medtune train` reads records files; data.sources are imported "
                                             "by the data stage", "import them first (`medtune data import -c CONFIG --out D`, "
                                             "then --data D) or run the whole chain: `medtune run CONFIG`")], str(config))
        result = train(cfg, list(data) if data else None, out, resume=resume, progress=not quiet)
    if not result.is_main_process:
        return
    losses = f"eval loss {result.first_eval_loss:.4f} -> {result.final_eval_loss:.4f} (best {result.best_eval_loss:.4f})" \
        if result.first_eval_loss is not None else f"train loss {result.train_loss}"
    console.print(f"[green]trained[/green] {result.steps} steps in {result.wall_time_s:.0f} s, "
                  f"{result.tokens_per_s:.0f} tokens/s, peak {result.peak_memory_mb:.0f} MB; {losses}")
    console.print(f"output: {result.output_dir}  (manifest: {result.run_dir / 'manifest.json'})")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
