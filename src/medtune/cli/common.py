"""Small helpers shared by CLI modules (printing, exit codes)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def user_error_message(e: BaseException) -> str | None:
    """The one-line message of an error a user can fix (bad file, name, option, config), else None."""
    from ..config.load import ConfigError
    from ..data.importers import DataError
    from ..eval.backends import BackendError
    from ..eval.benchmarks import BenchmarkError
    from ..eval.store import EvalIdentityError
    from ..export.common import ExportError
    from ..models.source import ModelLoadError
    from ..pipeline.registry import StageError
    from ..synth.kb import KBError

    known = (ConfigError, DataError, BackendError, BenchmarkError, EvalIdentityError, ExportError, ModelLoadError,
             StageError, KBError)
    if isinstance(e, known):
        return str(e)
    if isinstance(e, OSError) and e.filename is not None:  # an output under a file, a folder given for a file, no room
        return f"{e.filename}: {e.strerror or e}"
    return None


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """``with user_errors():`` turns a user-fixable error into `error: ...` on stderr and exit 2 (``fail``)."""
    try:
        yield
    except Exception as e:
        message = user_error_message(e)
        if message is None:
            raise
        fail(message)
