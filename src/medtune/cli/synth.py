"""`medtune synth [-c CONFIG] [overrides] --out D`, `medtune synth --preview N`, `medtune synth validate-kb [DIR]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markdown import Markdown
from rich.table import Table
from typer.core import TyperGroup

from .common import console, fail, user_errors
from .options import OVERRIDES_HELP, command_config, config_option, with_field_options


class OverridesThenSubcommand(TyperGroup):
    """`medtune synth` takes dotted overrides as arguments and has a subcommand: its name ends the overrides."""

    allow_interspersed_args = True  # `synth synth.n=5 --out D`: options after the overrides

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        cut = next((i for i, a in enumerate(args) if a in self.commands), None)
        if cut is None:
            return super().parse_args(ctx, args)
        super().parse_args(ctx, args[:cut])
        # click >= 8.2 keeps the subcommand in ctx._protected_args, older versions in ctx.protected_args
        setattr(ctx, "_protected_args" if hasattr(ctx, "_protected_args") else "protected_args", [args[cut]])
        ctx.args = args[cut + 1:]
        return ctx.args


synth_app = typer.Typer(help="Synthetic clinical cases from the medical knowledge base. Research use only.",
                        invoke_without_command=True, cls=OverridesThenSubcommand)


PREVIEW_FLAGS = ("seed", "specialties", "kb_dir", "compact")  # what --preview's cases depend on


@synth_app.callback()
@with_field_options("synth.n", "synth.seed", "synth.style", "synth.specialties", "synth.tasks", "synth.heldout_cases",
                    "synth.kb_dir", ("synth.teacher.url", "--teacher"), ("synth.teacher.model", "--teacher-model"),
                    ("synth.teacher.key_env", "--teacher-key-env"), "synth.bias_variants", "synth.compact")
def synth(
    ctx: typer.Context,
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    config: Path = config_option(),
    preview: int = typer.Option(0, "--preview", help="Print this many cases for review instead of writing files."),
    out: Path = typer.Option(None, "--out", help="Output folder (records.jsonl, cases.jsonl, dataset_card.md); "
                             "with -c the default is RUN_DIR/synth."),
    **flags: Any,
) -> None:
    """Generate synthetic cases and records (diagnosis, MCQ, management, open, treatment, mechanism) from the knowledge base."""
    if ctx.invoked_subcommand:
        return
    from ..pipeline import RunLayout
    from ..pipeline.stages.synth import run_synth_stage
    from ..synth import preview_text

    with user_errors():
        cfg = command_config(synth, config, list(overrides or []), flags)
        section = cfg.synth
        if preview:
            ignored = [f"--{k.replace('_', '-')}" for k, v in flags.items() if v is not None and k not in PREVIEW_FLAGS]
            if out is not None or ignored:  # a preview prints diagnosis cases and writes nothing
                fail(f"--preview prints cases and writes nothing; {', '.join(([] if out is None else ['--out']) + ignored)} "
                     f"would change nothing (it takes {', '.join('--' + k.replace('_', '-') for k in PREVIEW_FLAGS)})")
            console.print(Markdown(preview_text(preview, section.seed, section.specialties or None, section.kb_dir,
                                                compact=section.compact)))
            return
        out = out or (RunLayout.of(cfg).folder("synth") if config else None)
        if out is None:
            fail("give --out DIR (or -c CONFIG, or --preview N to look at cases)")
        result = run_synth_stage(section, out)
    _print_summary(result, out, section.style)


def _print_summary(result, out: Path, style: str) -> None:
    import json

    if style == "cases":  # counts per specialty and task, from the synth folder's stats.json
        s = json.loads((out / "stats.json").read_text(encoding="utf-8"))
        table = Table("specialty", *s["tasks"], "total", title=f"{s['cases']} cases, {s['records']} records")
        for spec, row in s["by_specialty"].items():
            table.add_row(spec, *(str(row.get(t, 0)) for t in s["tasks"]), str(sum(row.values())))
        console.print(table)
        console.print(f"seed {s['seed']} · KB {s['kb_version']} · written to {out}")
        teacher = s.get("teacher")
        if teacher:
            console.print(f"teacher: {teacher['accepted']} accepted, {teacher['rejected']} rejected "
                          f"({teacher['rejects_path']}), {teacher['failed']} failed")
            if teacher["failed"]:
                fail(f"{teacher['failed']} items could not reach the teacher; rerun the same command to resume", code=1)
    else:
        console.print(f"{result.count} records -> {result.records}")
    if result.heldout:
        console.print(f"{result.heldout_count} held-out MCQ -> {result.heldout}")


@synth_app.command("validate-kb")
def validate_kb(kb_dir: Path = typer.Argument(None, help="A user KB folder (validated together with the shipped KB)."),
                only: bool = typer.Option(False, "--only", help="Validate the folder alone, without the shipped KB.")) -> None:
    """Validate the shipped knowledge base (and a user folder): schema, units, vitals, differentials."""
    from ..synth.kb import KBError, load_kb

    try:
        kb = load_kb([kb_dir] if kb_dir else [], include_shipped=not (only and kb_dir))
    except KBError as e:
        fail(str(e))
    console.print(f"[green]ok[/green]: {len(kb.conditions)} conditions in {len(kb.specialties())} specialties "
                  f"({', '.join(kb.specialties())}); KB version {kb.version}")


def register(app: typer.Typer) -> None:
    app.add_typer(synth_app, name="synth")
