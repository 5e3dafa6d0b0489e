"""What a run leaves behind besides the adapter: metrics, TensorBoard, loss curve, manifest.

The manifest is what lets eval/export (and a reader a year later) know exactly what was
trained: base spec and resolved path, reasoning format and system prompt (eval asks the tuned model
the same way, ``training_prompt``), method, package versions, the sha256
of every training file, git commit, hardware, wall time, throughput, memory and losses.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ..utils.io import atomic_write_json

PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "tokenizers", "safetensors")


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("medtune",) + PACKAGES + ("bitsandbytes", "deepspeed"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(cwd: Path | None = None) -> str | None:
    """The source tree's commit (with '+dirty' when there are local changes), if it is a git checkout."""
    here = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def hardware(device: str, world_size: int) -> dict[str, Any]:
    import os

    import torch

    info: dict[str, Any] = {"device": device, "processes": world_size, "cpu": platform.processor() or platform.machine(),
                            "cpu_count": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_mb"] = round(torch.cuda.get_device_properties(0).total_memory / 2**20)
    return info


def peak_memory_mb() -> float:
    """Peak resident memory of this process (Linux ru_maxrss is KiB), plus peak CUDA allocation."""
    import torch

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        peak += torch.cuda.max_memory_allocated() / 2**20
    return round(peak, 1)


@dataclass
class MetricsLog:
    """metrics.jsonl + TensorBoard; on resume, rows after the resumed step are dropped first."""

    run_dir: Path
    start_step: int = 0
    enabled: bool = True
    rows: list[dict[str, Any]] = field(default_factory=list)
    _writer: Any = None

    def __post_init__(self) -> None:
        if not self.enabled:
            return
        path = self.run_dir / "metrics.jsonl"
        if path.exists():
            kept = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            self.rows = [r for r in kept if r.get("step", 0) <= self.start_step]
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.start_step + 1 if self.start_step else None)
        self._flush()

    def log(self, step: int, **values: float) -> None:
        if not self.enabled:
            return
        self.rows.append({"step": step, **values})
        for key, value in values.items():
            self._writer.add_scalar(key.replace("_", "/", 1) if key.startswith(("train_", "eval_")) else key, value, step)
        self._flush()

    def _flush(self) -> None:
        # Rewritten whole each time (small) so a kill never leaves a half line.
        from ..utils.io import atomic_write_jsonl

        atomic_write_jsonl(self.run_dir / "metrics.jsonl", self.rows)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def plot_loss_curve(rows: list[dict[str, Any]], out: Path, title: str,
                    keys: tuple[str, ...] = ("train_loss", "eval_loss")) -> Path | None:
    """Training and eval loss (or the ``keys`` given: a stage's reward terms) against step, as a PNG next to the metrics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {k: [(r["step"], r[k]) for r in rows if k in r] for k in keys}
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, points in curves.items():
        ax.plot(*zip(*points), marker="o" if key.startswith("eval") else None, label=key.replace("_", " "))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (assistant tokens)" if set(curves) <= {"train_loss", "eval_loss"} else "value")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return out


def write_manifest(run_dir: Path, fields: dict[str, Any]) -> Path:
    from .. import __version__

    manifest = {"medtune_version": __version__, "packages": package_versions(), "git_commit": git_commit(), **fields}
    return atomic_write_json(run_dir / "manifest.json", manifest)


def training_prompt(run_dir: str | Path) -> dict[str, Any]:
    """The reasoning format and system prompt a run was trained with: what eval asks it with by default.

    Read from RUN/manifest.json; runs from before the manifest carried ``system_prompt`` fall
    back to the resolved RUN/config.yaml (``data.system_prompt``).
    """
    import yaml

    run = Path(run_dir)
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    if "system_prompt" in manifest:
        system_prompt = manifest["system_prompt"]
    else:
        try:
            config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            config = {}
        system_prompt = (config.get("data") or {}).get("system_prompt")
    return {"reasoning_format": manifest.get("reasoning_format"), "system_prompt": system_prompt}
