"""Transport and browser rules: TLS for non-loopback binds, the CORS allowlist, security headers.

The CORS rules themselves are checked when settings load (``SecuritySection``); this module
turns the settings into what the app applies: a refusal to start, CORS middleware arguments, and
one dict of headers for every response.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import SecurityError
from .keyfiles import check_private

log = logging.getLogger(__name__)

# The web page is static files served by the app: no inline script, no third-party origin, no
# framing (clickjacking), no MIME sniffing, no referrer leaking URLs, nothing cached.
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cache-Control": "no-store",
}
HSTS = "max-age=31536000"


class TransportError(SecurityError):
    """The server must not start with these transport settings."""


def security_headers(tls: bool) -> dict[str, str]:
    """Headers for every response; HSTS only when medtune itself terminates TLS."""
    return {**SECURITY_HEADERS, **({"Strict-Transport-Security": HSTS} if tls else {})}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; a hostname or ``0.0.0.0`` is not loopback.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("example.org")
    (True, True, False, False)
    """
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def upstream_problem(url: str) -> str | None:
    """Why prompts may not go to the OpenAI-compatible upstream at ``url``, or None: plain HTTP only to this host.

    >>> upstream_problem("http://127.0.0.1:8001/v1") is None, upstream_problem("https://gpu.ward.local/v1") is None
    (True, True)
    >>> upstream_problem("http://10.0.0.5:8001/v1")[:41]
    'refusing plain HTTP to the upstream 10.0.'
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"endpoint {url!r} is not an http:// or https:// URL with a host"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return (f"refusing plain HTTP to the upstream {parts.hostname}: prompts (patient text) would cross the network "
                "unencrypted; use https://, or run the upstream on this host (127.0.0.1)")
    return None


def check_bind(host: str, tls_cert: str | None, tls_key: str | None, allow_plaintext: bool) -> bool:
    """Refuse a non-loopback bind without TLS (unless ``allow_plaintext``); return whether TLS is on.

    With TLS, both files must exist and the key must be readable by its owner only.
    """
    if tls_cert and tls_key:
        for path in (tls_cert, tls_key):
            if not Path(path).expanduser().is_file():
                raise TransportError(f"TLS file {path} does not exist")
        check_private(tls_key)
        return True
    if is_loopback(host):
        return False
    if not allow_plaintext:
        raise TransportError(
            f"refusing to serve plain HTTP on {host}: patient text would cross the network unencrypted. "
            "Give security.tls_cert and security.tls_key, bind 127.0.0.1, or set security.allow_plaintext=true "
            "only behind a TLS reverse proxy on this host")
    log.warning("!!! PLAINTEXT HTTP on non-loopback address %s (security.allow_plaintext=true): every request, "
                "API key and patient text is readable on the network unless a TLS proxy on this host fronts it !!!", host)
    return False


def cors_options(origins: list[str], allow_credentials: bool) -> dict[str, Any] | None:
    """Arguments for Starlette's ``CORSMiddleware``, or None when no cross-origin caller is allowed."""
    if not origins:
        return None
    if "*" in origins and allow_credentials:  # also refused at settings load; never trust one layer
        raise TransportError("CORS origin `*` with credentials is not allowed")
    return {
        "allow_origins": list(origins),
        "allow_credentials": allow_credentials,
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["Authorization", "Content-Type"],
        "max_age": 600,
    }
