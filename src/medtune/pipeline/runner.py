"""`run_pipeline`: run the declared stages in order, skip what is up to date, resume what was interrupted.

For each stage: hash the config values it reads and its inputs (upstream outputs, source
files) into a key; compare with its manifest (RUN/stages/<stage>.json):

* ``complete`` with the same key and unchanged outputs -> skipped, "up to date";
* ``running`` / ``failed`` with the same key -> resumed (train from its newest complete
  checkpoint, eval from its prediction stores, the rest re-run);
* anything else -> run from scratch; the old folder is set aside (RUN/.<stage>.previous) and
  deleted only once the new output is complete, so a failure never loses the last good one.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from ..config.load import ConfigError, ConfigProblem, save_resolved
from ..config.schema import RunConfig
from . import stages as _stages  # noqa: F401  (registers every stage)
from .fingerprint import HashCache, section_values
from .manifest import StageManifest, now, read_manifest, stage_key, what_changed, write_manifest
from .registry import STAGES, Context, RunLayout, Stage, StageError, select_stages
from .results import StageOutput

T = TypeVar("T", bound=StageOutput)
Action = Literal["run", "resume", "skip"]


@dataclass
class StageOutcome:
    stage: str
    action: Literal["ran", "resumed", "skipped", "not selected"]
    reason: str
    seconds: float = 0.0


@dataclass
class PipelineResult:
    run_dir: Path
    outcomes: list[StageOutcome] = field(default_factory=list)
    results: dict[str, StageOutput] = field(default_factory=dict)

    def get(self, kind: type[T]) -> T | None:
        return next((r for r in self.results.values() if isinstance(r, kind)), None)


def preflight(cfg: RunConfig, selected: list[str], source: str = "medtune run") -> None:
    """Every problem the selected stages can see before any work (files, names, packages, hardware), raised once."""
    problems: list[ConfigProblem] = []
    for name in selected:
        problems += STAGES[name].preflight(cfg)
    if problems:
        raise ConfigError(problems, source)


def _outputs_changed(prev: StageManifest, cache: HashCache) -> list[str]:
    return [p for p, fp in prev.outputs.items() if cache.of(Path(p)) != fp]


def decide(prev: StageManifest | None, key: str, section: dict, inputs: dict[str, str], cache: HashCache,
           force: bool) -> tuple[Action, str]:
    """Whether a stage runs, resumes or is skipped, and why (in words for the banner)."""
    if prev is None:
        return "run", "never run"
    if prev.key != key:
        return "run", "changed: " + "; ".join(what_changed(prev, section, inputs) or ["inputs"])
    if prev.status in ("running", "failed"):
        return "resume", f"interrupted ({prev.status} since {prev.started}): resuming"
    if force:
        return "run", "--force"
    changed = _outputs_changed(prev, cache)
    if changed:
        return "run", f"output changed or missing: {', '.join(changed)}"
    return "skip", f"up to date (config and inputs unchanged since {prev.finished})"


def _set_aside(folder: Path, complete: bool) -> Path | None:
    """Move a complete output to RUN/.<stage>.previous before its stage starts over; a partial one is dropped."""
    if not folder.exists():
        return None
    if not complete:  # this pipeline's unfinished work for other inputs: nothing worth keeping
        shutil.rmtree(folder)
        return None
    aside = folder.with_name(f".{folder.name}.previous")
    if aside.exists():
        shutil.rmtree(aside)
    folder.rename(aside)
    return aside


def _versions() -> dict[str, str]:
    from ..train.manifest import package_versions

    return package_versions()


def _execute(stage: Stage, ctx: Context, action: Action, key: str, section: dict, inputs: dict[str, str],
             cache: HashCache, prev: StageManifest | None) -> StageOutput:
    """Run one stage between a ``running`` and a ``complete`` (or ``failed``) manifest."""
    folder = ctx.layout.folder(stage.name)
    # Only an unfinished output of this pipeline is dropped; a folder it did not write (no manifest) is kept aside.
    complete = prev is None or prev.status == "complete"
    aside = _set_aside(folder, complete) if action == "run" and stage.has_folder else None
    started = now()
    write_manifest(ctx.layout.stages, StageManifest(stage=stage.name, status="running", key=key, section=section,
                                                    inputs=inputs, started=started, resumed=action == "resume"))
    t0 = time.perf_counter()
    try:
        result = stage.run(ctx, action == "resume")
    except Exception as e:
        write_manifest(ctx.layout.stages, StageManifest(
            stage=stage.name, status="failed", key=key, section=section, inputs=inputs, started=started,
            finished=now(), seconds=round(time.perf_counter() - t0, 1), error=f"{type(e).__name__}: {e}"))
        if aside is not None:
            ctx.echo(f"the previous {stage.name} output is kept in {aside}")
        raise
    outputs = {str(p): cache.of(p) for p in result.outputs()}
    write_manifest(ctx.layout.stages, StageManifest(
        stage=stage.name, status="complete", key=key, section=section, inputs=inputs, outputs=outputs,
        result=result.model_dump(mode="json"), started=started, finished=now(), seconds=round(time.perf_counter() - t0, 1),
        resumed=action == "resume", versions=_versions()))
    # The new output is complete: only now does the previous one go (also one left by an earlier failure).
    shutil.rmtree(folder.with_name(f".{folder.name}.previous"), ignore_errors=True)
    return result


def run_pipeline(cfg: RunConfig, *, only: list[str] | None = None, start: str | None = None, force: bool = False,
                 echo: Callable[[str], None] = print, progress: bool = True, source: str = "medtune run") -> PipelineResult:
    """Run ``cfg.stages`` (or ``only`` those, or from ``start`` on) in the run folder; see the module docstring.

    ``source`` names the config in error messages.
    """
    selected = select_stages(cfg.stages, only, start)
    preflight(cfg, selected, source)
    layout = RunLayout.of(cfg)
    layout.stages.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, layout.root)
    cache = HashCache(layout.stages / "fingerprints.json")
    ctx = Context(cfg, layout, echo=echo, progress=progress)
    out = PipelineResult(layout.root)
    try:
        for i, name in enumerate(cfg.stages, 1):
            stage, prev = STAGES[name], read_manifest(layout.stages, name)
            if name not in selected:
                _reuse(ctx, out, stage, prev)
                continue
            inputs = {label: cache.of(target) for label, target in stage.inputs(ctx).items()}
            section = section_values(cfg, stage.reads, stage.ignores)
            key = stage_key(name, section, inputs)
            action, reason = decide(prev, key, section, inputs, cache, force)
            echo(f"\n=== [{i}/{len(cfg.stages)}] {name}: {reason} ===")
            t0 = time.perf_counter()
            if action == "skip":
                ctx.results[name] = stage.output.model_validate(prev.result)
            else:
                ctx.results[name] = _execute(stage, ctx, action, key, section, inputs, cache, prev)
            cache.save()
            label = {"skip": "skipped", "resume": "resumed", "run": "ran"}[action]
            out.outcomes.append(StageOutcome(name, label, reason, round(time.perf_counter() - t0, 1)))
    finally:
        cache.save()
    out.results = dict(ctx.results)
    return out


def _reuse(ctx: Context, out: PipelineResult, stage: Stage, prev: StageManifest | None) -> None:
    """A declared stage that was not selected: hand on its last complete result, if any."""
    if prev is not None and prev.status == "complete" and prev.result is not None:
        ctx.results[stage.name] = stage.output.model_validate(prev.result)
        out.outcomes.append(StageOutcome(stage.name, "not selected", f"using its output of {prev.finished}"))
    else:
        out.outcomes.append(StageOutcome(stage.name, "not selected", "no complete output yet"))


__all__ = ["PipelineResult", "StageError", "StageOutcome", "decide", "preflight", "run_pipeline"]
