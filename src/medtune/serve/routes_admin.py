"""The audit log for auditors (``GET /v1/audit/events``) and key management for admins (``/v1/keys``).

These are ``medtune audit show`` and ``medtune keys list|create|revoke`` over HTTP, on the same
files the server uses: a key created or revoked here takes effect on the next request, as one
made with the CLI does. No route returns a stored hash; a new key is shown once, in the answer
to its creation (and never enters the audit log, not even as a digest).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..security import SecurityError
from ..security.audit_verify import read_events
from ..security.gate import SecurityGate
from ..security.keys import NAME_RE, KeyRecord, Role, RouteClass
from .errors import APIError
from .guards import guarded_router

KEY_ID = r"^[0-9a-f]{12}$"


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_RE.pattern, description="Who or what holds the key (1-64 of A-Z a-z 0-9 . _ @ -).")
    role: Role = Field(description="clinician (inference API), auditor (audit log), admin (keys, metrics) or monitor (metrics, readiness).")


def key_info(rec: KeyRecord) -> dict[str, Any]:
    """What may be shown of a key: never the key or its hash."""
    return {"id": rec.id, "name": rec.name, "role": rec.role, "created": rec.created, "revoked": rec.revoked}


def make_routers() -> list[APIRouter]:
    """(audit router, keys router) for one app."""
    audit = guarded_router(RouteClass.AUDIT, prefix="/v1/audit", tags=["audit"])
    keys = guarded_router(RouteClass.KEYS, prefix="/v1/keys", tags=["keys"])

    @audit.get("/events")
    async def audit_events(
        request: Request,
        since: str | None = Query(None, max_length=40, description="Only events at or after this ISO time (2025-01-31 or 2025-01-31T08:00)."),
        key: str | None = Query(None, pattern=KEY_ID, description="Only events of this key id."),
        limit: int = Query(1000, ge=1, le=10_000, description="At most this many events, the latest ones."),
    ) -> dict[str, Any]:
        """Audit events (who, when, route, status, PHI counts, tokens, digests); the log holds no text.

        Verify the log itself with `medtune audit verify` on the server (it needs the trusted public key)."""
        gate: SecurityGate = request.app.state.gate
        try:
            events = await asyncio.to_thread(read_events, gate.audit.path, since, key)
        except ValueError as e:
            raise APIError(400, f"since: {e} (use an ISO time such as 2025-01-31T08:00)", param="since") from None
        return {"object": "list", "total": len(events), "data": events[-limit:]}

    @keys.get("")
    async def list_keys(request: Request) -> dict[str, Any]:
        """Every key's id, name, role, creation and revocation time."""
        gate: SecurityGate = request.app.state.gate
        records = await asyncio.to_thread(gate.keys.records)
        return {"object": "list", "data": [key_info(r) for r in records]}

    @keys.post("", status_code=201)
    async def create_key(body: KeyCreate, request: Request) -> JSONResponse:
        """Create a key; the answer holds it once (only its salted hash is stored)."""
        gate: SecurityGate = request.app.state.gate
        try:
            key, rec = await asyncio.to_thread(gate.keys.create, body.name, body.role)
        except SecurityError as e:
            raise APIError(400, str(e), param="name") from None
        return JSONResponse({**key_info(rec), "key": key}, status_code=201)

    @keys.delete("/{key_id}")
    async def revoke_key(request: Request, key_id: str = Path(pattern=KEY_ID)) -> dict[str, Any]:
        """Revoke a key by id; requests with it fail from the next one on."""
        gate: SecurityGate = request.app.state.gate
        try:
            rec = await asyncio.to_thread(gate.keys.revoke, key_id)
        except SecurityError:
            raise APIError(404, f"no active key with id {key_id}", code="key_not_found", param="key_id") from None
        return key_info(rec)

    return [audit, keys]
