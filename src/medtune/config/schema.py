"""RunConfig: the single source of truth for a medtune run."""

from __future__ import annotations

from pydantic import Field

from .sections.base import Section
from .sections.data import DataSection
from .sections.eval import EvalSection
from .sections.export import ExportSection
from .sections.model import ModelSection
from .sections.serve import ServeSection
from .sections.synth import SynthSection
from .sections.train import TrainSection


class RunConfig(Section):
    """A whole run: which base, which data, and how each stage behaves.

    >>> cfg = RunConfig()
    >>> cfg.model.base, cfg.train.method, cfg.train.lora.r
    ('smollm2-135m', 'lora', 16)
    """

    name: str = Field("run", description="Run name, used for the run folder.")
    run_dir: str | None = Field(None, description="Output folder (default runs/<name>).")
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    synth: SynthSection = Field(default_factory=SynthSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    export: ExportSection = Field(default_factory=ExportSection)
    serve: ServeSection = Field(default_factory=ServeSection)
