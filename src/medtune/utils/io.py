"""Atomic file output and hashing.

Every file medtune writes goes through a temp file in the same folder, fsync, then
``os.replace``: a crash leaves either the old file or the new one, never half of one.
Outputs get the permissions an ordinary ``open()``/``mkdir()`` would give (0666/0777 minus
the umask): ``mkstemp``/``mkdtemp`` create 0600/0700, which would hide a run's files from
the group that shares the machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc), else set-and-restore.

    >>> 0 <= current_umask() <= 0o777
    True
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no read-only API elsewhere: set, then put the old value back at once
    os.umask(mask)
    return mask


def ordinary_mode(directory: bool = False) -> int:
    """0644/0755 under the usual umask 022: what open() and mkdir() would have created."""
    return (0o777 if directory else 0o666) & ~current_umask()


def fsync_path(path: str | Path) -> None:
    """fsync a file or a folder by path (a folder's fsync makes a rename in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8",
                file_mode: int | None = None) -> Iterator[IO]:
    """Open a temp file beside ``path``; on clean exit fsync and rename it over ``path``.

    The file gets ``file_mode`` (default: what open() would give); the temp file is 0600 from its
    creation, so a private file is never readable by others at any moment.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_open(p) as f:
    ...     _ = f.write("hello")
    >>> p.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    try:
        os.fchmod(fd, ordinary_mode() if file_mode is None else file_mode)
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, default=str) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Write ``rows`` (dicts or pydantic models) as JSONL atomically; return the count."""
    n = 0
    with atomic_open(path, "w") as f:
        for row in rows:
            if hasattr(row, "model_dump_json"):
                f.write(row.model_dump_json(exclude_none=True))
            else:
                f.write(json.dumps(row, ensure_ascii=False, default=str))
            f.write("\n")
            n += 1
    return n


def ordinary_permissions(folder: str | Path) -> Path:
    """Give every file and folder under ``folder`` (itself included) the ordinary mode.

    Libraries that write through their own temp files leave 0600 behind (safetensors'
    ``save_file``, hence every ``save_pretrained``); a finished output folder is normalized
    once, before it is moved into place.
    """
    folder = Path(folder)
    file_mode, dir_mode = ordinary_mode(), ordinary_mode(directory=True)
    os.chmod(folder, dir_mode)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), dir_mode)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, file_mode)
    return folder


def new_temp_dir(path: str | Path) -> Path:
    """An empty hidden sibling of ``path`` (same filesystem, so it can be renamed onto it), mode 0755."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, ordinary_mode(directory=True))
    return tmp


def replace_dir(new: str | Path, path: str | Path) -> Path:
    """Move the finished folder ``new`` to ``path``; an existing ``path`` is deleted only afterwards.

    The old folder is renamed aside first (a folder cannot be renamed onto a non-empty one),
    then ``new`` takes its name, then the old one is removed. A crash in between loses
    nothing: the old folder is left as ``.<name>.old-*`` beside ``path``; if the second
    rename fails, the old folder is put back.
    """
    new, path = Path(new), Path(path)
    if not path.exists():
        os.replace(new, path)
        return path
    aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    os.replace(path, aside)  # replaces the empty placeholder mkdtemp made
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(aside, path)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return path


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory in a temp sibling and swap it into place on success (see ``replace_dir``).

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> for text in ("old", "new"):
    ...     with atomic_dir(out) as tmp:
    ...         _ = (tmp / "weights.txt").write_text(text)
    >>> (out / "weights.txt").read_text(), sorted(p.name for p in out.parent.iterdir())
    ('new', ['model'])
    """
    tmp = new_temp_dir(path)
    try:
        yield tmp
        replace_dir(ordinary_permissions(tmp), path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def removed_if_left_empty(run_dir: Path, own: tuple[str, ...] = ()) -> Iterator[None]:
    """Create ``run_dir`` (and its missing parents); if the body fails and the folder holds nothing but the files
    named in ``own`` (what the caller itself wrote there, e.g. its resolved config), remove them, the folder and the
    parents this call created. A folder that existed before, or that holds anything else (quarantined records, a
    checkpoint), stays."""
    created = next((p for p in (run_dir, *run_dir.parents) if not p.exists() and p.parent.exists()), None)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        if created is not None and run_dir.is_dir() and all(p.name in own and p.is_file() for p in run_dir.iterdir()):
            for p in list(run_dir.iterdir()):
                p.unlink()
            for folder in (run_dir, *run_dir.parents):
                with contextlib.suppress(OSError):  # something else wrote there meanwhile: it stays
                    folder.rmdir()
                if folder == created:
                    break
        raise
