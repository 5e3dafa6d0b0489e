"""`medtune config validate|show`."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, user_errors
from .options import CONFIG_HELP, OVERRIDES_HELP

config_app = typer.Typer(help="Validate and show run configs.", no_args_is_help=True)


@config_app.command("validate")
def validate(
    file: Path = typer.Argument(..., help=CONFIG_HELP),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    hardware: bool = typer.Option(False, "--hardware", help="Also check settings against this machine (CUDA for QLoRA, ...)."),
) -> None:
    """Report every problem in a config at once (field path + fix); exit 2 if any."""
    from ..config import load_config

    with user_errors():
        load_config(file, overrides or [], check_hardware=hardware)
    console.print(f"{file}: OK")


@config_app.command("show")
def show(
    file: Path = typer.Argument(None, help=CONFIG_HELP + " Omit it for the defaults."),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """Print the resolved config (defaults + file + overrides)."""
    from ..config import config_to_yaml, load_config

    overrides = list(overrides or [])
    if file is not None and "=" in str(file) and not file.exists():  # only overrides were given
        file, overrides = None, [str(file), *overrides]
    with user_errors():
        cfg = load_config(file, overrides or [])
    typer.echo(config_to_yaml(cfg))


@config_app.command("fields")
def fields(section: str = typer.Argument(None, help="Only this section, e.g. train or data.sources.")) -> None:
    """Every config field with its default and help (the one place they are written: config/sections/)."""
    from rich.table import Table

    from .options import field_default, walk_fields

    table = Table("field", "default", "help")
    for path, info in walk_fields():
        if section and not (path == section or path.startswith(section + ".")):
            continue
        if info.description:  # sections themselves have no description of their own
            default = field_default(info)
            table.add_row(path, "-" if info.is_required() else repr(default), info.description)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
