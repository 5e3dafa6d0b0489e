"""`medtune export RUN|MERGED --gguf f16,q8_0,...` and `medtune export verify GGUF... [--against MERGED]`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from .common import console, fail, user_errors
from .options import command_config, config_option, field_option, split_args


def _verify_table(rows: list[dict]) -> Table:
    table = Table("file", "type", "MB", "exact prompts", "agreement", "flips", "margin/band", "Δppl", "template", "result")
    for r in rows:
        result = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: "reported"}[r["passed"]]
        table.add_row(Path(r["gguf"]).name, r["type"], f"{r['bytes'] / 2**20:.1f}", f"{r['exact_prompts']}/{r['prompts']}",
                      f"{r['agreement']:.3f}", str(r["flips"]), f"{r['max_flip_margin']:.3f}/{r['tie_band'] or '-'}",
                      f"{r['ppl_delta'] / r['ppl_hf']:+.2%}",
                      "ok" if r["chat_template_roundtrip"] and r["tokenizer_roundtrip"] else "MISMATCH", result)
    return table


def _run_verify(paths: list[Path], against: Path | None, ignored: list[str]) -> None:
    from ..export.common import is_hf_folder
    from ..export.verify import verify_ggufs

    if ignored:  # verify checks the files given against --against: nothing else applies
        fail(f"export verify takes GGUF files and --against only; {', '.join(ignored)} would change nothing")
    if not paths:
        fail("export verify: give at least one .gguf file")
    if missing := [str(p) for p in paths if not p.is_file()]:
        fail(f"export verify: no such file: {', '.join(missing)}")
    if against is not None and not is_hf_folder(against):
        fail(f"export verify: --against {against} is not a Hugging Face model folder (config.json and weights)")
    if against is None:
        candidates = [p.parent / "merged" for p in paths if (p.parent / "merged" / "config.json").is_file()]
        if not candidates:
            fail(f"export verify: no merged HF folder next to {paths[0]}; pass --against MERGED")
        against = candidates[0]
    rows = verify_ggufs(paths, against)
    console.print(_verify_table(rows))
    console.print("protocol: 32 greedy tokens per fixed prompt; agreement = teacher-forced top-1 vs the HF model (fp32); "
                  "a flip fails only if HF's margin (in logit std units) exceeds the type's tie band (docs/export.md).")
    if any(r["passed"] is False for r in rows):
        raise typer.Exit(1)


def export(
    args: list[str] = typer.Argument(None, help="Run folder or merged HF folder (with -c the default is RUN_DIR/train), or "
                                     "`verify GGUF...`; then dotted overrides."),
    config: Path = config_option(),
    gguf: str = field_option("export.gguf", "--gguf", hint=" Comma-separated."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default RUN/export; with -c: RUN_DIR/export)."),
    verify: bool = field_option("export.verify", "--verify/--no-verify"),
    ollama: bool = field_option("export.ollama", "--ollama/--no-ollama"),
    model_card: bool = field_option("export.model_card", "--model-card/--no-model-card"),
    against: Path | None = typer.Option(None, "--against", help="With `verify`: the merged HF folder to compare with."),
) -> None:
    """Export to GGUF (+ Modelfile, model card), or `export verify GGUF...` to check files against the HF model."""
    from ..export import export_run
    from ..pipeline import RunLayout

    paths, overrides = split_args(args)
    with user_errors():
        if paths[:1] == ["verify"]:
            given = {"-c": config, "--gguf": gguf, "--out": out, "--verify/--no-verify": verify,
                     "--ollama/--no-ollama": ollama, "--model-card/--no-model-card": model_card}
            _run_verify([Path(p) for p in paths[1:]], against, [k for k, v in given.items() if v is not None] + overrides)
            return
        cfg = command_config(export, config, overrides, locals())
        if len(paths) > 1:
            fail(f"unexpected extra arguments {paths[1:]}; use --gguf a,b for several types")
        layout = RunLayout.of(cfg) if config else None
        target = Path(paths[0]) if paths else (layout.folder("train") if layout else None)
        if target is None:
            fail("give the run folder (or -c CONFIG to export its run's trained model)")
        x = cfg.export
        summary = export_run(target, out or (layout.folder("export") if layout else None), x.gguf, verify=x.verify,
                             modelfile=x.ollama, model_card=x.model_card)
    for q, f in summary["files"].items():
        console.print(f"{q:>7}: {f['path']} ({f['bytes'] / 2**20:.1f} MB)")
    if summary["verify"]:
        console.print(_verify_table(summary["verify"]))
    if summary.get("verify_skipped"):
        console.print(f"[yellow]unverified:[/yellow] {escape(summary['verify_skipped'])}")
    for key in ("modelfile", "model_card"):
        if key in summary:
            console.print(f"{key}: {summary[key]}")
    console.print(f"timings: {json.dumps(summary['timings'])}")
    if summary["passed"] is False:  # None (unverified, or K-quants reported only) is not a failure
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
