"""`python -m medtune.train ...` == `medtune train ...`; the entry point for `accelerate launch -m medtune.train`."""

import sys

import typer

from ..cli.train import train_command
from ..config import ConfigError
from ..models.loader import ModelLoadError


def main() -> None:
    try:
        typer.run(train_command)
    except (ConfigError, ModelLoadError) as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
