"""`medtune data import|validate|stats|split|mix|contamination`: thin wrappers over medtune.data.

Other modules may add commands to ``data_app`` (e.g. ``preview`` from cli/data_preview.py).
"""

from __future__ import annotations

import typer

data_app = typer.Typer(
    help="Import, validate, dedupe, check contamination, split, mix and inspect training data.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
