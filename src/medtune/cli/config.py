"""`medtune config validate|show`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config import ConfigError, config_to_yaml, load_config
from .common import console, err_console

config_app = typer.Typer(help="Validate and show run configs.", no_args_is_help=True)


@config_app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="Run config YAML."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. train.lora.r=16"),
    hardware: bool = typer.Option(False, "--hardware", help="Also check settings against this machine (CUDA for QLoRA, ...)."),
) -> None:
    """Report every problem in a config at once (field path + fix); exit 1 if any."""
    try:
        load_config(file, overrides or [], check_hardware=hardware)
    except ConfigError as e:
        err_console.print(str(e), markup=False)
        raise typer.Exit(1) from None
    console.print(f"{file}: OK")


@config_app.command("show")
def show(
    file: Path = typer.Argument(None, help="Run config YAML (omit for the defaults)."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. train.lora.r=16"),
) -> None:
    """Print the resolved config (defaults + file + overrides)."""
    overrides = list(overrides or [])
    if file is not None and "=" in str(file) and not file.exists():  # only overrides were given
        file, overrides = None, [str(file), *overrides]
    try:
        cfg = load_config(file, overrides or [])
    except ConfigError as e:
        err_console.print(str(e), markup=False)
        raise typer.Exit(1) from None
    typer.echo(config_to_yaml(cfg))


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
