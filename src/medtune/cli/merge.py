"""`medtune merge [RUN] [-c CONFIG] [overrides] [--out DIR]`: adapter + base -> standalone HF folder."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, fail, user_errors
from .options import command_config, config_option, split_args


def merge(
    args: list[str] = typer.Argument(None, help="Run folder (RUN/adapter or RUN/model; with -c the default is "
                                     "RUN_DIR/train); then dotted overrides."),
    config: Path = config_option(),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default RUN/merged)."),
) -> None:
    """Merge a LoRA/DoRA adapter into its base model (fp32) and save safetensors + tokenizer + chat template."""
    from ..export import merge_run
    from ..pipeline import RunLayout

    paths, overrides = split_args(args)
    with user_errors():
        if unused := [o for o in overrides if o.split("=", 1)[0].strip() not in ("run_dir", "name")]:
            # merge reads the base, dtype and adapter from the run's manifest; the config only locates the run
            fail(f"merge takes the base model and settings from the run's manifest; {', '.join(unused)} would change "
                 "nothing (only run_dir and name, which locate the run, apply)")
        cfg = command_config(merge, config, overrides, locals())
        if len(paths) > 1:
            fail(f"one run folder at a time (got {paths})")
        run = Path(paths[0]) if paths else (RunLayout.of(cfg).folder("train") if config else None)
        if run is None:
            fail("give the run folder (or -c CONFIG to merge its run's trained model)")
        path = merge_run(run, out)
    console.print(f"merged model: {path}")


def register(app: typer.Typer) -> None:
    app.command("merge")(merge)
