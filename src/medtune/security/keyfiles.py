"""Secret files: written atomically with mode 0600 from the first byte, refused when readable by others.

``utils.io``'s writers produce ordinary permissions for ordinary outputs; a secret must never
exist, even for a moment, with group or world access, so it is created here with
``O_EXCL | 0600`` and renamed into place. Reading refuses a secret that others can read (as ssh
does): a leaked HMAC or signing key silently voids the audit log's guarantees.
"""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..utils.io import atomic_open, fsync_path
from . import SecurityError

PRIVATE_MODE = 0o600


def write_private(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; the file is 0600 from creation to rename."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with atomic_open(path, "wb", file_mode=PRIVATE_MODE) as f:
        f.write(data)
    fsync_path(path.parent)
    return path


def check_private(path: str | Path) -> Path:
    """Raise unless ``path`` is a regular file that only its owner can read or write."""
    path = Path(path).expanduser()
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise SecurityError(f"{path}: not a regular file")
    if st.st_mode & 0o077:
        raise SecurityError(f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets others read it; run `chmod 600 {path}`")
    return path


def read_private(path: str | Path) -> bytes:
    return check_private(path).read_bytes()


def load_or_create_secret(path: str | Path, nbytes: int = 32) -> bytes:
    """The random secret stored at ``path`` (hex), created on first use."""
    path = Path(path).expanduser()
    if not path.exists():
        write_private(path, secrets.token_hex(nbytes).encode() + b"\n")
    text = read_private(path).decode("ascii", "replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SecurityError(f"{path}: expected {nbytes * 2} hex characters") from None
    if len(key) < 16:
        raise SecurityError(f"{path}: secret is {len(key)} bytes; at least 16 are needed")
    return key


def public_key_path(signing_key_path: str | Path) -> Path:
    p = Path(signing_key_path).expanduser()
    return p.with_name(p.name + ".pub")


def load_or_create_signing_key(path: str | Path) -> Ed25519PrivateKey:
    """Ed25519 private key (PKCS#8 PEM) at ``path``, created on first use with its ``.pub`` beside it."""
    path = Path(path).expanduser()
    created = not path.exists()
    if created:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        write_private(path, pem)
    try:
        key = serialization.load_pem_private_key(read_private(path), password=None)
    except ValueError as e:
        raise SecurityError(f"{path}: not a PEM private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SecurityError(f"{path}: not an Ed25519 key")
    pub_path = public_key_path(path)
    # A new key replaces any .pub left beside it (an old key's, after a rotation that kept it); an existing key
    # writes its .pub again only when missing (a start that stopped between the two files).
    if created or not pub_path.exists():
        pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        with atomic_open(pub_path, "wb", encoding=None) as f:
            f.write(pub)
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """A trusted Ed25519 public key: a ``.pub`` PEM, or the private key file it belongs to."""
    path = Path(path).expanduser()
    data = path.read_bytes()
    try:
        if b"PRIVATE KEY" in data:
            key = serialization.load_pem_private_key(read_private(path), password=None).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise SecurityError(f"{path}: not a PEM key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SecurityError(f"{path}: not an Ed25519 key")
    return key
