"""Checkpoints you can trust: atomic, verified, the last K kept, resume from the newest good one.

A checkpoint is written into a temporary sibling folder, every file is fsynced, a ``COMPLETE``
marker listing each file's sha256 is written last, and only then is the folder renamed into
place (rename is atomic on POSIX). A SIGKILL at any moment therefore leaves either no folder
or a temp folder that is ignored; a folder whose files no longer match their hashes (a bad
disk, a manual edit) is skipped with a warning and the previous checkpoint is used instead.

Only what changes during training is saved (trainable weights, optimizer, scheduler, RNG and
loop state), so a LoRA checkpoint of an 8B model is megabytes, not gigabytes.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..utils.io import fsync_path, ordinary_permissions, replace_dir, sha256_file

log = logging.getLogger(__name__)

PREFIX = "checkpoint-"
MARKER = "COMPLETE"


@dataclass
class Checkpoint:
    path: Path
    step: int
    state: dict[str, Any]


def trainable_state(model: Any) -> dict[str, Any]:
    """Detached copies of the parameters that train (LoRA weights, or everything for full FT)."""
    return {n: p.detach().cpu().contiguous().clone() for n, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(root: Path, step: int, model: Any, optimizer: Any, scheduler: Any,
                    loop_state: dict[str, Any], keep: int) -> Path:
    """Write ``root/checkpoint-{step}`` atomically, then prune to the newest ``keep``."""
    import torch
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:07d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        save_file(trainable_state(model), tmp / "trainable.safetensors")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / "loop_state.json").write_text(json.dumps({"step": step, **loop_state}, indent=2))
        ordinary_permissions(tmp)  # safetensors writes 0600
        mark_complete(tmp, step)
        replace_dir(tmp, final)  # an existing checkpoint of this step goes only once the new one is in place
        fsync_path(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    prune(root, keep)
    return final


def mark_complete(path: Path, step: int) -> None:
    """fsync every file of a written checkpoint folder, then its COMPLETE marker (their sha256s): what ``verify`` checks.

    Also called on the checkpoints TRL's trainers write (the second training stage), so one rule says
    which checkpoint a resume may trust.
    """
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and p.name != MARKER)
    for name in files:
        fsync_path(path / name)
    marker = {"step": step, "files": {name: sha256_file(path / name) for name in files}}
    (path / MARKER).write_text(json.dumps(marker, indent=2))
    fsync_path(path / MARKER)
    fsync_path(path)


def verify(path: Path) -> str | None:
    """None when the checkpoint is complete and intact, else why not."""
    marker = path / MARKER
    if not marker.is_file():
        return "no COMPLETE marker (the write was interrupted)"
    try:
        files = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError) as e:
        return f"unreadable COMPLETE marker: {e}"
    for name, digest in files.items():
        if not (path / name).is_file():
            return f"missing {name}"
        if sha256_file(path / name) != digest:
            return f"{name} does not match its sha256 (corrupt)"
    return None


def list_checkpoints(root: Path) -> list[Path]:
    """Checkpoint folders, newest first (temp folders of interrupted writes are not listed)."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]), reverse=True)


def latest_valid(root: Path) -> Path | None:
    """The newest checkpoint that verifies; broken ones are skipped with a warning."""
    for path in list_checkpoints(root):
        problem = verify(path)
        if problem is None:
            return path
        log.warning("skipping checkpoint %s: %s", path, problem)
    return None


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and RNG in place; return the loop state."""
    import torch
    from safetensors.torch import load_file

    weights = load_file(path / "trainable.safetensors")
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise ValueError(f"{path}: checkpoint has parameters this model lacks, e.g. {missing[:3]}")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    restore_rng(torch.load(path / "rng.pt", weights_only=False))
    return json.loads((path / "loop_state.json").read_text())


def prune(root: Path, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints; clear leftovers of interrupted writes."""
    for old in list_checkpoints(root)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    for tmp in root.glob(f".tmp-{PREFIX}*"):
        shutil.rmtree(tmp, ignore_errors=True)
