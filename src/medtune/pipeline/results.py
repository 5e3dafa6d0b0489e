"""Typed results that stages hand to each other (and that a stage manifest stores to hand them on later).

Each result names the files it produced; ``outputs()`` lists the ones whose fingerprints a
later run compares to decide that the stage is still up to date.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class StageOutput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def outputs(self) -> list[Path]:
        return []


class SynthOutput(StageOutput):
    folder: Path
    records: Path
    count: int
    heldout: Path | None = None
    heldout_count: int = 0

    def outputs(self) -> list[Path]:
        return [self.records] + ([self.heldout] if self.heldout else [])


class ContaminationCheck(BaseModel):
    """The data stage's benchmark-overlap check (``data.contamination``); the full report is in ``report``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: str  # drop or refuse
    checked: int
    flagged: int
    dropped: int
    benchmarks: dict[str, int]  # benchmark -> items indexed
    not_checked: dict[str, str]  # declared benchmark -> why it could not be read here
    report: Path

    def line(self) -> str:
        against = ", ".join(f"{k} ({v})" for k, v in self.benchmarks.items())
        return (f"contamination: {self.flagged} of {self.checked} records overlap benchmark items"
                f"{f', {self.dropped} dropped' if self.dropped else ''} (against {against}) -> {self.report}")


class DataOutput(StageOutput):
    folder: Path
    records: Path
    count: int
    quarantined: int
    sources: list[str]
    contamination: ContaminationCheck | None = None  # None: data.contamination is off

    def outputs(self) -> list[Path]:
        return [self.records]


class TrainOutput(StageOutput):
    run_dir: Path  # the training run folder (adapter/ or model/, manifest.json, checkpoints/)
    output_dir: Path
    steps: int
    resumed_from_step: int | None = None
    train_loss: float | None = None
    first_eval_loss: float | None = None
    final_eval_loss: float | None = None
    tokens_per_s: float = 0.0

    def outputs(self) -> list[Path]:
        return [self.output_dir, self.run_dir / "manifest.json"]


class BenchmarkScore(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str  # the benchmark's, + "-<protocol>" when eval.protocols scores it by two
    folder: Path
    summary: Path  # summary.json, or compare.json with eval.compare_base
    n: int
    accuracy: float | None  # None: no scorable items
    ci95: tuple[float, float]
    unparseable: int = 0
    base_accuracy: float | None = None  # with eval.compare_base
    gain: float | None = None
    gain_ci95: tuple[float, float] | None = None
    p_value: float | None = None
    protocol: str = ""  # loglik or cot ("" in stage manifests written before eval.protocols)

    def line(self) -> str:
        name = f"{self.name}{f' ({self.protocol})' if self.protocol else ''}"
        if self.accuracy is None:
            return f"{name}: no scorable items (n={self.n})"
        text = f"{name}: accuracy {self.accuracy:.3f} [{self.ci95[0]:.3f}, {self.ci95[1]:.3f}] (n={self.n})"
        if self.base_accuracy is not None and self.gain is not None and self.gain_ci95 is not None:
            text += (f"; base {self.base_accuracy:.3f}, gain {self.gain:+.3f} "
                     f"(95% CI {self.gain_ci95[0]:+.3f} to {self.gain_ci95[1]:+.3f}), McNemar p = {self.p_value:.3g}")
        return text


class EvalOutput(StageOutput):
    folder: Path
    protocol: str  # eval.protocol, the default; each score carries the protocol it was scored by (eval.protocols)
    scores: list[BenchmarkScore]

    def outputs(self) -> list[Path]:
        return [s.summary for s in self.scores]


class ExportOutput(StageOutput):
    folder: Path
    merged: Path
    files: dict[str, Path]
    verified: bool | None  # None: verification skipped or not asked for
    checks: dict[str, str] = {}  # quant -> verify_status of its file: passed, reported (K-quants: measured, not judged), unverified
    modelfile: Path | None = None
    model_card: Path | None = None

    def outputs(self) -> list[Path]:
        return list(self.files.values()) + [p for p in (self.modelfile,) if p]


class ServeOutput(StageOutput):
    model: Path
    command: list[str]
