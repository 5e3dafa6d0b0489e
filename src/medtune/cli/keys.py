"""`medtune keys create|list|revoke`: API keys for `medtune serve` (salted hashes at rest)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from .common import console, err_console, fail
from .options import field_option, or_default

keys_app = typer.Typer(help="Create, list and revoke API keys (roles: clinician, auditor, admin, monitor).", no_args_is_help=True)
STORE = "serve.security.keys_file"  # --store: the same field `medtune serve` reads


def _store(path: Path | None):
    from ..security import SecurityError
    from ..security.keys import KeyStore

    try:
        return KeyStore(or_default(path, STORE))
    except (SecurityError, OSError) as e:
        fail(str(e))


@keys_app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="Who or what holds the key (shown in `keys list`)."),
    role: str = typer.Option(..., "--role", help="clinician (inference API), auditor (audit log), admin (keys, metrics) or monitor (metrics and readiness only)."),
    store: Path = field_option(STORE, "--store"),
) -> None:
    """Create a key and print it once; only its salted hash is stored."""
    from ..security import SecurityError
    from ..security.keys import Role

    if role not in {r.value for r in Role}:
        fail(f"--role {role!r}: use one of {', '.join(r.value for r in Role)}")
    try:
        keystore = _store(store)
        key, rec = keystore.create(name, role)
    except (SecurityError, OSError) as e:
        fail(str(e))
    err_console.print(f"created key id {rec.id} ({rec.role}, {rec.name}) in {keystore.path}. "
                      "The key below is shown once and is not stored: give it to its holder now.")
    typer.echo(key)


@keys_app.command("list")
def list_keys(
    store: Path = field_option(STORE, "--store"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table."),
) -> None:
    """List key ids, names, roles and revocation times (never keys or hashes)."""
    from ..security import SecurityError

    try:
        records = _store(store).records()
    except SecurityError as e:
        fail(str(e))
    if as_json:
        for r in records:
            typer.echo(json.dumps({"id": r.id, "name": r.name, "role": r.role, "created": r.created, "revoked": r.revoked}))
        return
    table = Table("id", "name", "role", "created", "status")
    for r in records:
        table.add_row(r.id, r.name, r.role, r.created, "active" if r.active else f"revoked {r.revoked}")
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key: str = typer.Argument(..., help="Key id (or name, when exactly one active key has it)."),
    store: Path = field_option(STORE, "--store"),
) -> None:
    """Revoke a key; a running server refuses it from its next request."""
    from ..security import SecurityError

    try:
        rec = _store(store).revoke(key)
    except (SecurityError, OSError) as e:
        fail(str(e))
    console.print(f"revoked {rec.id} ({rec.role}, {rec.name}) at {rec.revoked}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
