"""`medtune run`: the stages of a RunConfig in order, each from its own section, skipping what is up to date.

See ``runner`` (skip / resume / run), ``registry`` (stages and the run folder), ``results``
(the typed results stages hand each other) and ``manifest`` (one manifest per stage).
"""

from .registry import STAGES, RunLayout, StageError
from .results import (
    BenchmarkScore,
    DataOutput,
    EvalOutput,
    ExportOutput,
    ServeOutput,
    StageOutput,
    SynthOutput,
    TrainOutput,
)
from .runner import PipelineResult, StageOutcome, run_pipeline

__all__ = [
    "STAGES", "BenchmarkScore", "DataOutput", "EvalOutput", "ExportOutput", "PipelineResult", "RunLayout", "ServeOutput",
    "StageError", "StageOutcome", "StageOutput", "SynthOutput", "TrainOutput", "run_pipeline",
]
