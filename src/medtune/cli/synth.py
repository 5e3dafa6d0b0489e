"""`medtune synth` (generate), `medtune synth --preview N`, `medtune synth validate-kb [DIR]`."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError
from rich.markdown import Markdown
from rich.table import Table

from .common import console, fail

synth_app = typer.Typer(help="Synthetic clinical cases from the medical knowledge base. Research use only.",
                        invoke_without_command=True)


def _split(values: list[str] | None) -> list[str]:
    """Accept both `--tasks mcq --tasks open` and `--tasks mcq,open`."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@synth_app.callback()
def synth(
    ctx: typer.Context,
    n: int = typer.Option(1000, "--n", help="Number of cases (each gives one record per task)."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives byte-identical output."),
    specialties: list[str] = typer.Option(None, help="Only these specialties (repeat or comma-separate)."),
    tasks: list[str] = typer.Option(None, help="Tasks among diagnosis, mcq, management, open (default: all)."),
    kb_dir: Path = typer.Option(None, "--kb-dir", help="Extra knowledge-base folder (<specialty>/<id>.yaml)."),
    teacher: str = typer.Option(None, "--teacher", help="OpenAI-compatible base URL of a teacher LLM (optional)."),
    teacher_model: str = typer.Option(None, "--teacher-model", help="Model name at the teacher endpoint."),
    teacher_key_env: str = typer.Option("MEDTUNE_TEACHER_API_KEY", help="Environment variable with the teacher key."),
    bias_variants: bool = typer.Option(False, "--bias-variants", help="Add bias-probe copies of demographic-neutral cases."),
    preview: int = typer.Option(0, "--preview", help="Print this many cases for review instead of writing files."),
    out: Path = typer.Option(None, "--out", help="Output folder (records.jsonl, cases.jsonl, dataset_card.md)."),
) -> None:
    """Generate synthetic cases and records (diagnosis, MCQ, management, open) from the knowledge base."""
    if ctx.invoked_subcommand:
        return
    from ..config.load import ConfigError
    from ..config.sections.synth import SynthSection, TeacherSection
    from ..synth import preview_text, run_synth_section

    try:
        section = SynthSection(n=n, seed=seed, specialties=_split(specialties), tasks=_split(tasks) or SynthSection().tasks,
                               kb_dir=str(kb_dir) if kb_dir else None, bias_variants=bias_variants,
                               teacher=TeacherSection(url=teacher, model=teacher_model, key_env=teacher_key_env))
    except ValidationError as e:
        fail(f"invalid synth options: {e}")
    try:
        if preview:
            console.print(Markdown(preview_text(preview, seed, section.specialties or None, section.kb_dir)))
            return
        if out is None:
            fail("give --out DIR (or --preview N to look at cases)")
        result = run_synth_section(section, out)
    except ConfigError as e:
        fail(str(e))
    _print_summary(result, out)


def _print_summary(result: dict, out: Path) -> None:
    table = Table("specialty", *result["tasks"], "total", title=f"{result['cases']} cases, {result['records']} records")
    for spec, row in result["by_specialty"].items():
        table.add_row(spec, *(str(row.get(t, 0)) for t in result["tasks"]), str(sum(row.values())))
    console.print(table)
    console.print(f"seed {result['seed']} · KB {result['kb_version']} · written to {out}")
    teacher = result.get("teacher")
    if teacher:
        console.print(f"teacher: {teacher['accepted']} accepted, {teacher['rejected']} rejected "
                      f"({teacher['rejects_path']}), {teacher['failed']} failed")
        if teacher["failed"]:
            fail(f"{teacher['failed']} items could not reach the teacher; rerun the same command to resume", code=1)


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
