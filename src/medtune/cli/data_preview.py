"""`medtune data preview N RECORDS`: rendered training samples with the no-loss spans visibly marked."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import typer
from rich.text import Text

from .common import console, user_errors
from .data import data_app
from .options import OVERRIDES_HELP, command_config, config_option


@data_app.command("preview")
def preview(
    n: int = typer.Argument(3, help="How many records to show."),
    records: str = typer.Argument(..., help="Records: a file in any importable format, a folder written by `medtune synth` "
                                  "or `medtune data import|split|mix`, or hf:ID[:CONFIG][@SPLIT]."),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    config: Path = config_option(),
    plain: bool = typer.Option(False, "--plain", help="No colours: mark spans without loss as [no-loss]...[/no-loss]."),
) -> None:
    """Show exactly what training sees: the chat-templated text, spans without loss dimmed and bracketed,
    token counts per sample, and the mask audit (shortened / dropped / refused samples)."""
    from ..data.contract import iter_source_records, resolve_records
    from ..data.render import RenderRefused, format_masked_preview, masked_segments, render_example
    from ..models.load import load_tokenizer
    from ..models.source import resolve_source

    with user_errors():
        cfg = command_config(preview, config, list(overrides or []), locals())
        found = resolve_records(records, cfg.data.format)  # a wrong path fails here, before the tokenizer loads
    source = resolve_source(cfg.model.base)
    tok = load_tokenizer(source, cfg.model.revision)
    fmt = cfg.model.resolved_reasoning_format(source.reasoning_format)
    opts = {"system_prompt": cfg.data.system_prompt, "loss_on": cfg.data.loss_on, "max_length": cfg.data.max_length,
            "truncation": cfg.data.truncation}
    for i, rec in enumerate(islice(iter_source_records(found), n), 1):
        try:
            ex = render_example(tok, rec, fmt, **opts)
        except RenderRefused as e:
            console.print(f"[red]#{i} {rec.id}: refused ({e.reason}): {e.detail}[/red]")
            continue
        console.rule(f"#{i} {rec.id}: {len(ex)} tokens, {ex.n_trainable} with loss"
                     + (", reasoning shortened" if ex.shortened else ""))
        if plain:
            typer.echo(format_masked_preview(tok, ex))
            continue
        text = Text()
        for span, trained in masked_segments(tok, ex):
            text.append(span if trained else f"[no-loss]{span}[/no-loss]", style="bold green" if trained else "dim")
        console.print(text)
    console.print(f"[dim]format={fmt} loss_on={cfg.data.loss_on} max_length={cfg.data.max_length} base={cfg.model.base}; "
                  "green = tokens that carry loss[/dim]")
