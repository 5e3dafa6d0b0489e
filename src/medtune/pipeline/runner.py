"""`run_pipeline`: run the declared stages in order, skip what is up to date, resume what was interrupted.

For each stage: hash the config values it reads and its inputs (upstream outputs, source
files) into a key; compare with its manifest (RUN/stages/<stage>.json):

* ``complete`` with the same key and unchanged outputs -> skipped, "up to date";
* ``running`` / ``failed`` with the same key -> resumed (train from its newest complete
  checkpoint, eval from its prediction stores, the rest re-run);
* ``complete`` where only inputs the stage can refresh changed (``Stage.refresh_inputs``) and its
  outputs are intact -> refreshed in place (export rewrites its model card after a new evaluation);
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
Action = Literal["run", "resume", "skip", "refresh"]


@dataclass
class StageOutcome:
    stage: str
    action: Literal["ran", "resumed", "skipped", "refreshed", "not selected"]
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


def _only_refreshable(prev: StageManifest, section: dict, inputs: dict[str, str], refreshable: tuple[str, ...]) -> bool:
    """True when the config values are the same and every input that changed is one a refresh handles."""
    labels = (set(prev.inputs) | set(inputs)) - set(refreshable)
    return prev.section == section and all(prev.inputs.get(k) == inputs.get(k) for k in labels)


def decide(prev: StageManifest | None, key: str, section: dict, inputs: dict[str, str], cache: HashCache,
           force: bool, refreshable: tuple[str, ...] = ()) -> tuple[Action, str]:
    """Whether a stage runs, resumes, is refreshed or is skipped, and why (in words for the banner).

    ``refreshable``: the input labels whose change alone the stage's ``refresh`` brings up to date
    (a complete output, intact, not ``--force``d), instead of a run from scratch.
    """
    if prev is None:
        return "run", "never run"
    if prev.key != key:
        why = "changed: " + "; ".join(what_changed(prev, section, inputs) or ["inputs"])
        if (refreshable and prev.status == "complete" and not force and _only_refreshable(prev, section, inputs, refreshable)
                and not _outputs_changed(prev, cache)):
            return "refresh", f"{why}: refreshing that alone (the rest of its output is up to date)"
        return "run", why
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


def _complete(stage: Stage, ctx: Context, key: str, section: dict, inputs: dict[str, str], cache: HashCache,
              result: StageOutput, started: str, t0: float, resumed: bool) -> None:
    """The ``complete`` manifest of a stage that produced ``result``, with its outputs' fingerprints."""
    outputs = {str(p): cache.of(p) for p in result.outputs()}
    write_manifest(ctx.layout.stages, StageManifest(
        stage=stage.name, status="complete", key=key, section=section, inputs=inputs, outputs=outputs,
        result=result.model_dump(mode="json"), started=started, finished=now(), seconds=round(time.perf_counter() - t0, 1),
        resumed=resumed, versions=_versions()))


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
    _complete(stage, ctx, key, section, inputs, cache, result, started, t0, action == "resume")
    # The new output is complete: only now does the previous one go (also one left by an earlier failure).
    shutil.rmtree(folder.with_name(f".{folder.name}.previous"), ignore_errors=True)
    return result


def _refresh(stage: Stage, ctx: Context, key: str, section: dict, inputs: dict[str, str], cache: HashCache,
             prev: StageManifest) -> StageOutput:
    """Bring a complete output up to date in place (``Stage.refresh``). No ``running`` manifest: the old one keeps
    its key until the refresh has worked, so a failed refresh is simply tried again next time, never "resumed"
    into a full run."""
    if stage.refresh is None:  # decide() offers a refresh only to a stage that has one
        raise StageError(f"the {stage.name} stage has no refresh")
    started, t0 = now(), time.perf_counter()
    result = stage.refresh(ctx, stage.output.model_validate(prev.result))
    _complete(stage, ctx, key, section, inputs, cache, result, started, t0, resumed=False)
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
            action, reason = decide(prev, key, section, inputs, cache, force, stage.refresh_inputs if stage.refresh else ())
            echo(f"\n=== [{i}/{len(cfg.stages)}] {name}: {reason} ===")
            t0 = time.perf_counter()
            if action == "skip":
                ctx.results[name] = stage.output.model_validate(prev.result)
            elif action == "refresh":
                try:
                    ctx.results[name] = _refresh(stage, ctx, key, section, inputs, cache, prev)
                except Exception as e:  # a refresh is a shortcut: when it cannot be taken, the stage runs in full
                    echo(f"{name}: refreshing failed ({type(e).__name__}: {e}); running the stage again")
                    action = "run"
                    ctx.results[name] = _execute(stage, ctx, action, key, section, inputs, cache, prev)
            else:
                ctx.results[name] = _execute(stage, ctx, action, key, section, inputs, cache, prev)
            cache.save()
            label = {"skip": "skipped", "resume": "resumed", "run": "ran", "refresh": "refreshed"}[action]
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
