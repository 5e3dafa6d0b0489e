"""The serve stage: for now it prints the `medtune serve` command for the exported model.

``serve_command`` is the one function to switch to ``medtune.serve.serve_command(section)``
(and the stage's run to ``medtune.serve.run_server(section)``) when the server is merged.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from ...config.sections.serve import ServeSection
from ...export.pipeline import MODELFILE_PREFERENCE
from ..registry import Context, Stage, StageError, register
from ..results import ExportOutput, ServeOutput, TrainOutput


def served_model(section: ServeSection, export: ExportOutput | None, train: TrainOutput | None) -> Path | None:
    """serve.model, else the exported GGUF Ollama would use (the Modelfile's preference), else the training run."""
    if section.model:
        return Path(section.model)
    if export and export.files:
        return export.files[next(q for q in MODELFILE_PREFERENCE + tuple(export.files) if q in export.files)]
    return train.run_dir if train else None


def serve_command(section: ServeSection, model: Path) -> list[str]:
    """The `medtune serve` command line for ``model`` with the section's address."""
    return ["medtune", "serve", str(model), "--host", section.host, "--port", str(section.port)]


def _run(ctx: Context, resume: bool) -> ServeOutput:
    model = served_model(ctx.cfg.serve, ctx.get(ExportOutput), ctx.get(TrainOutput))
    if model is None:
        raise StageError("nothing to serve: set serve.model or run the train and export stages")
    command = serve_command(ctx.cfg.serve, model)
    ctx.echo(f"serve it with: {shlex.join(command)}")
    return ServeOutput(model=model, command=command)


def _inputs(ctx: Context) -> dict[str, Path | str]:
    model = served_model(ctx.cfg.serve, ctx.get(ExportOutput), ctx.get(TrainOutput))
    return {"model": str(model)} if model else {}


register(Stage("serve", ServeOutput, reads=("serve",), run=_run, inputs=_inputs, has_folder=False))
