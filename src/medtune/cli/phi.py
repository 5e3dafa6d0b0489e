"""`medtune phi scan IN.jsonl --out OUT.jsonl`: find and redact HIPAA Safe Harbor identifiers, offline."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, fail

phi_app = typer.Typer(help="Detect and redact protected health information (Safe Harbor identifiers), offline.",
                      no_args_is_help=True)


@phi_app.command("scan")
def scan(
    src: Path = typer.Argument(..., help='JSONL input, one {"id": ..., "text": ...} per line.'),
    out: Path = typer.Option(..., "--out", help='JSONL output: {"id", "redacted", "spans": [{"start", "end", "type"}]} per line.'),
    presidio: bool = typer.Option(True, "--presidio/--no-presidio", help="Add Presidio's pattern recognizers when presidio-analyzer is installed."),
) -> None:
    """Redact identifiers (names, places below a state, dates but the year, ages over 89, numbers, URLs, ...)."""
    from ..security import SecurityError
    from ..security.phi.detector import default_detector
    from ..security.phi.scan import scan_jsonl

    if not src.is_file():
        fail(f"{src}: no such file")
    try:
        summary = scan_jsonl(src, out, default_detector(presidio))
    except (SecurityError, UnicodeDecodeError, OSError) as e:
        fail(str(e))
    found = {k: v for k, v in summary.items() if k != "lines"}
    detail = ", ".join(f"{k} {v}" for k, v in found.items()) or "none"
    console.print(f"{summary['lines']} lines -> {out}; identifiers found: {detail}")
    console.print("Spans are character offsets into the input text. Recall is measured on synthetic notes "
                  "(docs/security.md); review output before sharing it.")


def register(app: typer.Typer) -> None:
    app.add_typer(phi_app, name="phi")
