"""RunConfig: the single source of truth for a medtune run."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator

from .sections.base import Section, split_commas
from .sections.data import DataSection
from .sections.eval import EvalSection
from .sections.export import ExportSection
from .sections.model import ModelSection
from .sections.serve import ServeSection
from .sections.synth import SynthSection
from .sections.train import TrainSection

# The stages of `medtune run`, in the order they run (medtune.pipeline registers one each).
STAGE_NAMES = ("synth", "data", "train", "eval", "export", "serve")
StageName = Literal["synth", "data", "train", "eval", "export", "serve"]


class RunConfig(Section):
    """A whole run: which base, which data, and how each stage behaves.

    >>> cfg = RunConfig()
    >>> cfg.model.base, cfg.train.method, cfg.train.lora.r
    ('smollm2-135m', 'lora', 16)
    """

    name: str = Field("run", description="Run name, used for the run folder.")
    run_dir: str | None = Field(None, description="Output folder (default runs/<name>).")
    stages: Annotated[list[StageName], BeforeValidator(split_commas)] = Field(
        default_factory=lambda: ["data", "train", "eval", "export", "serve"],
        description="Stages `medtune run` runs, always in the order synth, data, train, eval, export, serve.")
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    synth: SynthSection = Field(default_factory=SynthSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    export: ExportSection = Field(default_factory=ExportSection)
    serve: ServeSection = Field(default_factory=ServeSection)

    @field_validator("stages")
    @classmethod
    def _stages_once_each(cls, value: list[str]) -> list[str]:
        twice = sorted({s for s in value if value.count(s) > 1})
        if twice:
            raise ValueError(f"stage(s) listed twice: {twice}")
        return sorted(value, key=STAGE_NAMES.index)
