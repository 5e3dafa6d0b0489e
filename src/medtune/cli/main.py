"""The ``medtune`` command. Every module in medtune.cli with a ``register(app)`` adds its commands."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from .. import __version__

app = typer.Typer(
    name="medtune",
    help="Fine-tune small open LLMs into medical reasoning models, evaluate, export to GGUF, serve. Research use only.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"medtune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """medtune: medical reasoning fine-tuning toolkit."""


def _register_all() -> None:
    import medtune.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name in ("main", "common"):
            continue
        module = importlib.import_module(f"medtune.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def main() -> None:
    """The console script: a user-fixable error that escaped its command (bad config, data file, model
    name ...: ``common.user_error_message``) is one `error: ...` line and exit 2, never a traceback."""
    from .common import user_error_message

    try:
        app()
    except Exception as e:
        message = user_error_message(e)
        if message is None:
            raise
        typer.secho(f"error: {message}", fg="red", err=True)
        sys.exit(2)
