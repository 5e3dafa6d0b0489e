"""The serve stage: the exact `medtune serve` command for the exported model, with the serve section's settings.

The command comes from ``medtune.serve.serve_command`` (the one place that turns a serve section
into flags, security settings included); the stage prints it rather than blocking the pipeline on
a server that runs until stopped.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from ...config.sections.serve import ServeSection
from ...export.pipeline import MODELFILE_PREFERENCE, llama_cpp_available
from ..registry import Context, Stage, StageError, register
from ..results import ExportOutput, ServeOutput, TrainOutput


def served_model(section: ServeSection, export: ExportOutput | None, train: TrainOutput | None,
                 gguf_ok: bool | None = None) -> Path | None:
    """serve.model, else the exported GGUF Ollama would use (the Modelfile's preference) where llama-cpp-python
    is installed to serve it, else the training run (transformers: what a `serve`-extra install runs)."""
    if section.model:
        return Path(section.model)
    gguf_ok = llama_cpp_available() if gguf_ok is None else gguf_ok
    if export and export.files and (gguf_ok or not train):
        return export.files[next(q for q in MODELFILE_PREFERENCE + tuple(export.files) if q in export.files)]
    return train.run_dir if train else None


def _run(ctx: Context, resume: bool) -> ServeOutput:
    model = served_model(ctx.cfg.serve, ctx.get(ExportOutput), ctx.get(TrainOutput))
    if model is None:
        raise StageError("nothing to serve: set serve.model or run the train and export stages")
    from ...serve.run import (
        serve_command,  # no FastAPI import: the command is built from the section alone
    )

    command = serve_command(ctx.cfg.serve, str(model))
    ctx.echo(f"serve it with: {shlex.join(command)}")
    ctx.echo("every request needs an API key: create one with `medtune keys create --name NAME --role clinician` (docs/security.md)")
    return ServeOutput(model=model, command=command)


def _inputs(ctx: Context) -> dict[str, Path | str]:
    model = served_model(ctx.cfg.serve, ctx.get(ExportOutput), ctx.get(TrainOutput))
    return {"model": str(model)} if model else {}


register(Stage("serve", ServeOutput, reads=("serve",), run=_run, inputs=_inputs, has_folder=False))
