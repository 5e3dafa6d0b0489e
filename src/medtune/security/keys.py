"""API keys and roles: salted scrypt hashes at rest, constant-time checks against every key.

A key looks like ``mt_<id>_<secret>``: a public 12-hex id (it names the key in the audit log
and in ``medtune keys list``) and a 256-bit random secret. Only ``scrypt(secret, salt)`` is
stored, with its parameters, in a 0600 JSON file.

Cost per request. A slow KDF per stored key per request would make every request pay
``N x scrypt`` (tens of ms each). Instead:

1. the presented key's SHA-256 is compared (``hmac.compare_digest``) with the SHA-256 that each
   entry remembers in memory after its first successful check (a random dummy for entries not
   yet seen): N cheap constant-time comparisons, no early exit, no KDF;
2. only when that misses: one scrypt with the salt of the entry the id names (a dummy salt when
   no entry has that id, so an unknown id costs the same), then a ``compare_digest`` of the
   result against every stored hash, again without early exit.

So a legitimate client pays one scrypt for its first request after a (re)start or a store change,
then N compare_digest calls; a wrong key pays one scrypt, and the server bounds how many of those a
client address may cause (``limits.AuthFailureLimiter``). The in-memory SHA-256 of a 256-bit random
key reveals nothing usable. Revocation: the store file is stat-ed on every call and re-read when
it changed (writes are atomic renames, so the inode changes), so a revoked key fails on the next
request.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

from . import SecurityError
from .keyfiles import check_private, write_private

KEY_RE = re.compile(r"^mt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
NAME_RE = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
SCRYPT_DEFAULTS = {"alg": "scrypt", "n": 2**14, "r": 8, "p": 1, "dklen": 32}


class Role(str, Enum):
    CLINICIAN = "clinician"
    AUDITOR = "auditor"
    ADMIN = "admin"
    MONITOR = "monitor"


class RouteClass(str, Enum):
    """What a route does; each role may use some classes. PUBLIC needs no key (allowlist only)."""

    PUBLIC = "public"
    INFERENCE = "inference"
    AUDIT = "audit"
    KEYS = "keys"
    OPS = "ops"


# Separation of duties: whoever reads the audit trail does not generate with patient text, and
# whoever manages keys does neither (45 CFR 164.312(a)(1), access by role). A monitor (a metrics
# scraper, a load balancer's readiness probe) sees operations only, so no machine that polls the
# server holds a key that could mint keys.
ROLE_ROUTE_CLASSES: dict[Role, frozenset[RouteClass]] = {
    Role.CLINICIAN: frozenset({RouteClass.INFERENCE}),
    Role.AUDITOR: frozenset({RouteClass.AUDIT}),
    Role.ADMIN: frozenset({RouteClass.KEYS, RouteClass.OPS}),
    Role.MONITOR: frozenset({RouteClass.OPS}),
}


# The one allowlist: the route templates a request may use without a key. Liveness, and the web
# page's static files (they hold no data; the page asks for a key and sends it as a Bearer header
# on every API call). Every API route, the OpenAPI schema included, needs a key.
PUBLIC_PATHS = frozenset({"/health", "/", "/static/{name}"})


def route_class_problems(routes: dict[str, RouteClass | None], public: frozenset[str] = PUBLIC_PATHS) -> list[str]:
    """Fail closed: every route needs a class, and only allowlisted paths may be PUBLIC.

    The app's test walks its route table into ``{path: class}`` and asserts this returns [].

    >>> route_class_problems({"/health": RouteClass.PUBLIC, "/v1/new": None, "/debug": RouteClass.PUBLIC})
    ['/v1/new: no route class (deny by default: give it one)', '/debug: PUBLIC but not in the allowlist']
    """
    problems = []
    for path, cls in routes.items():
        if cls is None:
            problems.append(f"{path}: no route class (deny by default: give it one)")
        elif cls is RouteClass.PUBLIC and path not in public:
            problems.append(f"{path}: PUBLIC but not in the allowlist")
    return problems


@dataclass(frozen=True)
class Principal:
    """Who a request is: the key id (never the key), the key's name and its role."""

    key_id: str
    name: str
    role: Role

    def may(self, route_class: RouteClass) -> bool:
        return route_class in ROLE_ROUTE_CLASSES[self.role]


@dataclass
class KeyRecord:
    id: str
    name: str
    role: str
    created: str
    kdf: dict
    hash: str
    revoked: str | None = None
    # in memory only: SHA-256 of the full key once it authenticated (see the module docstring)
    _verified: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def active(self) -> bool:
        return self.revoked is None

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


def parse_key(presented: str | None) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed key, else None (the format is public, so this leaks nothing).

    >>> parse_key("mt_0123456789ab_" + "A" * 43)[0]
    '0123456789ab'
    >>> parse_key("Bearer x") is None
    True
    """
    m = KEY_RE.match(presented or "")
    return (m.group(1), m.group(2)) if m else None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def derive(secret: str, kdf: dict) -> bytes:
    """scrypt of the secret with the entry's stored parameters."""
    n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
    return hashlib.scrypt(secret.encode("utf-8"), salt=base64.b64decode(kdf["salt"]), n=n, r=r, p=p,
                          dklen=int(kdf["dklen"]), maxmem=256 * n * r * p + (1 << 20))


def _record(raw: object, path: Path, i: int) -> KeyRecord:
    where = f"{path}: keys[{i}]"
    if not isinstance(raw, dict):
        raise SecurityError(f"{where}: expected an object")
    missing = {"id", "name", "role", "created", "kdf", "hash"} - raw.keys()
    if missing:
        raise SecurityError(f"{where}: missing field(s) {sorted(missing)}")
    rec = KeyRecord(**{k: raw[k] for k in ("id", "name", "role", "created", "kdf", "hash", "revoked") if k in raw})
    if rec.role not in {r.value for r in Role}:
        raise SecurityError(f"{where}.role: {rec.role!r} is not one of {[r.value for r in Role]}")
    kdf = rec.kdf if isinstance(rec.kdf, dict) else {}
    if kdf.get("alg") != "scrypt" or not {"n", "r", "p", "dklen", "salt"} <= kdf.keys():
        raise SecurityError(f"{where}.kdf: expected scrypt with n, r, p, dklen and salt")
    if not re.fullmatch(r"[0-9a-f]{12}", str(rec.id)):
        raise SecurityError(f"{where}.id: {rec.id!r} is not 12 hex characters")
    return rec


def _read_store(path: Path) -> list[KeyRecord]:
    if not path.exists():
        return []
    check_private(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SecurityError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise SecurityError(f"{path}: expected {{\"version\": 1, \"keys\": [...]}}")
    return [_record(raw, path, i) for i, raw in enumerate(data["keys"])]


class KeyStore:
    """The key store file, re-read whenever it changes; safe to share between threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._stamp: tuple | None = ("never read",)
        self._records: list[KeyRecord] = []
        # never equal to a SHA-256 digest in practice; stands in for entries not yet verified
        self._dummy_digest = secrets.token_bytes(32)
        self._dummy_kdf = {**SCRYPT_DEFAULTS, "salt": _b64(secrets.token_bytes(16))}
        self._current()

    # ------------------------------------------------------------------ reading
    def _stat_stamp(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)

    def _current(self) -> list[KeyRecord]:
        stamp = self._stat_stamp()
        if stamp == self._stamp:
            return self._records
        with self._lock:
            if stamp != self._stamp:
                fresh = _read_store(self.path)
                known = {(r.id, r.hash): r._verified for r in self._records if r.active}
                for r in fresh:  # keep the cheap path for keys that did not change
                    r._verified = known.get((r.id, r.hash)) if r.active else None
                self._records, self._stamp = fresh, stamp
            return self._records

    def records(self) -> list[KeyRecord]:
        return list(self._current())

    # ------------------------------------------------------------------ request path
    def authenticate(self, presented: str | None) -> Principal | None:
        """The principal of an active key, else None. Every stored entry is compared, always."""
        records = self._current()
        text = presented if isinstance(presented, str) else ""
        fast = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        hit: KeyRecord | None = None
        for rec in records:  # no early exit
            if hmac.compare_digest(fast, rec._verified or self._dummy_digest) and rec.active:
                hit = rec
        if hit is None:
            hit = self._slow_check(records, text, fast)
        return Principal(hit.id, hit.name, Role(hit.role)) if hit is not None else None

    def _slow_check(self, records: list[KeyRecord], text: str, fast: bytes) -> KeyRecord | None:
        parsed = parse_key(text)
        if parsed is None:
            return None
        key_id, secret = parsed
        named = [r for r in records if hmac.compare_digest(r.id, key_id)]
        derived = derive(secret, named[0].kdf if named else self._dummy_kdf)
        hit = None
        for rec in records:  # no early exit; only the entry with this id can match its salt
            same_hash = hmac.compare_digest(derived, base64.b64decode(rec.hash))
            same_id = hmac.compare_digest(rec.id, key_id)
            if same_hash and same_id and rec.active:
                hit = rec
        if hit is not None:
            hit._verified = fast
        return hit

    # ------------------------------------------------------------------ admin (CLI)
    @contextlib.contextmanager
    def _edit(self):
        """Exclusive read-modify-write: a lock file serializes concurrent `medtune keys` runs."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            records = _read_store(self.path)
            yield records
            body = {"version": 1, "keys": [r.to_json() for r in records]}
            write_private(self.path, (json.dumps(body, indent=2) + "\n").encode("utf-8"))
        finally:
            os.close(fd)

    def create(self, name: str, role: Role | str) -> tuple[str, KeyRecord]:
        """Add a key; return ``(the key, its record)``. The key is not stored and cannot be shown again."""
        if not NAME_RE.match(name):
            raise SecurityError(f"key name {name!r}: use 1-64 of A-Z a-z 0-9 . _ @ -")
        role = Role(role)
        with self._edit() as records:
            key_id = secrets.token_hex(6)
            while any(r.id == key_id for r in records):
                key_id = secrets.token_hex(6)
            secret = secrets.token_urlsafe(32)
            kdf = {**SCRYPT_DEFAULTS, "salt": _b64(secrets.token_bytes(16))}
            rec = KeyRecord(id=key_id, name=name, role=role.value, kdf=kdf, hash=_b64(derive(secret, kdf)),
                            created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
            records.append(rec)
        return f"mt_{key_id}_{secret}", rec

    def revoke(self, id_or_name: str) -> KeyRecord:
        """Revoke one active key by id, or by name when exactly one active key has that name."""
        with self._edit() as records:
            matches = [r for r in records if r.active and id_or_name in (r.id, r.name)]
            if not matches:
                raise SecurityError(f"{self.path}: no active key with id or name {id_or_name!r}")
            if len(matches) > 1:
                ids = ", ".join(r.id for r in matches)
                raise SecurityError(f"{id_or_name!r} names {len(matches)} active keys ({ids}); revoke by id")
            matches[0].revoked = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return matches[0]
