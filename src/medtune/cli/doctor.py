"""`medtune doctor`."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from .common import console


def doctor() -> None:
    """Check torch/CUDA, core and optional packages, memory, disk and the embedded model."""
    from ..doctor import run_checks

    checks = run_checks()
    table = Table("check", "status", "detail")
    for c in checks:
        status = "[green]ok[/green]" if c.ok else ("[red]FAIL[/red]" if c.required else "[yellow]-[/yellow]")
        table.add_row(c.name, status, escape(c.detail))
    console.print(table)
    failed = [c for c in checks if c.required and not c.ok]
    if failed:
        console.print(f"[red]{len(failed)} required check(s) failed:[/red] " + escape("; ".join(f"{c.name}: {c.detail}" for c in failed)))
        raise typer.Exit(1)
    console.print("[green]core OK[/green]")


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
