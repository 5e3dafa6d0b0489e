"""The stage registry: what each stage reads, what it depends on, how it runs, and the run folder layout.

A stage is a function of its config section and its inputs. It declares

* ``reads``: the config paths whose values it uses (their change re-runs it), less ``ignores``,
* ``inputs(ctx)``: the upstream files, folders or identifiers it depends on,
* ``preflight(cfg)``: problems to report before anything runs (a missing file, a missing package),
* ``run(ctx, resume)``: the work, returning a typed result (``results.py``);
* optionally ``refresh(ctx, previous)`` and the ``refresh_inputs`` it serves: when only those inputs changed,
  the runner brings the complete output up to date with it instead of running the stage again (export: the
  model card after a new evaluation, without converting the model again).

Each stage module registers itself with ``@register``; ``medtune.pipeline.stages`` imports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ..config.load import ConfigProblem
from ..config.schema import STAGE_NAMES, RunConfig
from .results import StageOutput

T = TypeVar("T", bound=StageOutput)


class StageError(RuntimeError):
    """A stage that cannot run or did not succeed; the message says what to do."""


@dataclass(frozen=True)
class RunLayout:
    """RUN/config.yaml, RUN/stages/<stage>.json, and one folder per stage (RUN/synth, RUN/data, RUN/train, ...)."""

    root: Path

    @classmethod
    def of(cls, cfg: RunConfig) -> RunLayout:
        return cls(Path(cfg.run_dir or Path("runs") / cfg.name))

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    def folder(self, stage: str) -> Path:
        return self.root / stage


@dataclass
class Context:
    """What a running stage sees: the config, the run folder, and the typed results before it."""

    cfg: RunConfig
    layout: RunLayout
    results: dict[str, StageOutput] = field(default_factory=dict)
    echo: Callable[[str], None] = print
    progress: bool = True

    def get(self, kind: type[T]) -> T | None:
        return next((r for r in self.results.values() if isinstance(r, kind)), None)

    def need(self, kind: type[T], stage: str) -> T:
        found = self.get(kind)
        if found is None:
            raise StageError(f"{stage} needs the output of an earlier stage ({kind.__name__}) and there is none in "
                             f"{self.layout.root}: add that stage to `stages` or run it first (`medtune run CONFIG --stages ...`)")
        return found


@dataclass(frozen=True)
class Stage:
    name: str
    output: type[StageOutput]
    reads: tuple[str, ...]
    run: Callable[[Context, bool], StageOutput]
    inputs: Callable[[Context], dict[str, Path | str]] = lambda ctx: {}
    preflight: Callable[[RunConfig], list[ConfigProblem]] = lambda cfg: []
    has_folder: bool = True  # serve writes nothing
    ignores: tuple[str, ...] = ()  # paths under ``reads`` whose effect reaches the stage through an input
    refresh: Callable[[Context, StageOutput], StageOutput] | None = None  # previous result -> result, cheaply
    refresh_inputs: tuple[str, ...] = ()  # input labels whose change alone ``refresh`` handles


STAGES: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    if stage.name not in STAGE_NAMES:
        raise ValueError(f"unknown stage {stage.name!r}; RunConfig knows {STAGE_NAMES}")
    STAGES[stage.name] = stage
    return stage


def select_stages(declared: list[str], only: list[str] | None = None, start: str | None = None) -> list[str]:
    """The declared stages to run: all, ``only`` these, or from ``start`` on (pipeline order kept).

    >>> select_stages(["data", "train", "eval"], start="train")
    ['train', 'eval']
    """
    problems = [s for s in (only or []) + ([start] if start else []) if s not in declared]
    if problems:
        raise StageError(f"stage(s) {problems} not in this config's stages {declared}: add them to `stages` in the config")
    chosen = list(declared)
    if start:
        chosen = chosen[chosen.index(start):]
    if only:
        chosen = [s for s in chosen if s in only]
    if not chosen:  # e.g. --stages data --from train: running nothing and reporting success would hide the mistake
        if not declared:
            raise StageError("the config lists no stages: set `stages`, e.g. stages: [synth, data, train, eval]")
        raise StageError(f"--stages {','.join(only or [])} with --from {start} selects none of {declared}: "
                         "drop one of them, or name stages from that point on")
    return chosen
