"""`medtune audit verify|show`: check the audit log's hash chain and signatures; list events."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ..config.sections.security import SecuritySection
from .common import console, err_console, fail

audit_app = typer.Typer(help="Verify and read the server's tamper-evident audit log.", no_args_is_help=True)
DEFAULTS = SecuritySection()
LOG_HELP = "The log file, or its folder (default: security.audit_dir)."


def _log_file(log: Path | None) -> Path:
    from ..security.audit import LOG_NAME

    path = Path(log or DEFAULTS.audit_dir).expanduser()
    path = path / LOG_NAME if path.is_dir() else path
    if not path.is_file():
        fail(f"{path}: no audit log there")
    return path


def _head_beside(key_path: Path) -> Path:
    """The head file the server writes beside the signing key, found from the trusted key actually
    used: its ``.pub`` or the private key itself (a copied key pair keeps its head file beside it)."""
    from ..security.audit import head_path_for

    return head_path_for(key_path.with_suffix("") if key_path.suffix == ".pub" else key_path)


def _ranges(spans: list[tuple[int, int]]) -> str:
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


@audit_app.command("verify")
def verify(
    log: Path | None = typer.Argument(None, help=LOG_HELP),
    public_key: Path | None = typer.Option(None, "--public-key", help="Trusted Ed25519 public key (default: security.audit_signing_key + .pub)."),
    head: Path | None = typer.Option(None, "--head", help="Head file with the last signed checkpoint (default: beside the trusted key, e.g. KEY.pem.head.json for KEY.pem.pub)."),
    no_head: bool = typer.Option(False, "--no-head", help="Skip the head check (e.g. an archived copy); truncation past the last checkpoint then goes unseen."),
) -> None:
    """Exit 0 if the log verifies, 1 naming the first bad line, 2 on unusable input.

    It also says whether the server closed the log cleanly, and which events no signature vouches
    for: those after the last checkpoint, and those a crashed session left unsigned."""
    from ..security import SecurityError
    from ..security.audit_verify import verify_log
    from ..security.keyfiles import load_public_key, public_key_path

    path = _log_file(log)
    key_path = public_key or public_key_path(DEFAULTS.audit_signing_key)
    try:
        key = load_public_key(key_path)
    except (OSError, SecurityError) as e:
        fail(f"trusted public key: {e}; pass --public-key (the key inside the log cannot vouch for itself)")
    head_file = None if no_head else (head or _head_beside(key_path.expanduser()))
    if head_file is not None and not head_file.is_file():
        if head is not None:
            fail(f"{head}: head file not found")
        err_console.print(f"[yellow]warning:[/yellow] no head file at {head_file}: a cut past the last checkpoint cannot "
                          "be detected (pass --head)")
        head_file = None
    report = verify_log(path, key, head_file)
    if not report.ok:
        console.print(f"[red]FAILED[/red] {path}: {escape(report.problems[0])}")
        raise typer.Exit(1)
    console.print(f"[green]verified[/green] {path}: log {report.log_id}, {report.entries} lines, {report.events} events "
                  f"({report.signed_events} signed), {report.checkpoints} signed checkpoints, {report.unsigned_events} "
                  "events after the last one" + ("" if report.head_checked else " (head not checked)")
                  + (", closed by the server" if report.closed else ""))
    if report.adopted:
        console.print(f"[yellow]not vouched for:[/yellow] {report.adopted_events} events (seq {_ranges(report.adopted)}) "
                      "were left unsigned by a server that stopped without closing the log (crash or kill); the next "
                      "one kept them, unsigned: they could have been dropped, changed or added before it restarted")
    if report.closed is False:
        console.print(f"[yellow]not closed:[/yellow] the server is running, or stopped without closing the log; the "
                      f"{report.unsigned_events} events after the last checkpoint are unsigned")
    elif report.closed is None and report.unsigned_events:
        console.print(f"[yellow]unsigned:[/yellow] the {report.unsigned_events} events after the last checkpoint (a "
                      f"format-{report.format} log does not record whether the server closed it)")


@audit_app.command("show")
def show(
    log: Path | None = typer.Argument(None, help=LOG_HELP),
    since: str | None = typer.Option(None, "--since", help="Only events at or after this ISO time (e.g. 2025-01-31 or 2025-01-31T08:00)."),
    key: str | None = typer.Option(None, "--key", help="Only events of this key id."),
    as_json: bool = typer.Option(False, "--json", help="Print the events as JSON lines."),
) -> None:
    """List audit events (who, when, route, status, PHI counts, tokens); no text is ever stored."""
    from ..security.audit_verify import read_events

    problems: list[str] = []
    try:
        events = read_events(_log_file(log), since, key, problems)
    except ValueError as e:
        fail(f"--since {since!r}: {e}")
    for problem in problems:
        err_console.print(f"[yellow]warning:[/yellow] skipped {escape(problem)}", soft_wrap=True)
    if problems:
        err_console.print(f"[yellow]warning:[/yellow] {len(problems)} damaged lines skipped; run `medtune audit verify`")
    if as_json:
        for e in events:
            typer.echo(json.dumps(e, sort_keys=True))
        return
    table = Table("time", "key id", "role", "route", "status", "ms", "tokens in/out", "PHI", "request id")
    for e in events:
        phi = ", ".join(f"{k} {v}" for k, v in sorted(e.get("phi", {}).items())) or "-"
        table.add_row(e["time"][:19], str(e.get("key_id") or "-"), str(e.get("role") or "-"), e["route"], str(e["status"]),
                      f"{e['latency_ms']:.0f}", f"{e['prompt_tokens']}/{e['completion_tokens']}", phi, e["request_id"])
    console.print(table)
    console.print(f"{len(events)} events (run `medtune audit verify` to check the log has not been altered)")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
