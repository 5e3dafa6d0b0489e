"""`medtune quickstart`: `medtune run` on the packaged quickstart recipe, plus the before/after demo answers.

The recipe (``resources/recipes/quickstart.yaml``, also ``configs/quickstart.yaml``) runs the
whole chain on the embedded SmolLM2-135M on a CPU in ~15-20 minutes: synth (focused synthetic
cardiology cases and held-out MCQ from another seed) -> data -> train (LoRA) -> eval (base vs
tuned on the held-out MCQ by chain of thought, Wilson intervals + McNemar) -> export (merge,
GGUF Q8_0, Q4_K_M when llama.cpp is installed, verified against the merged model) -> the serve
command. Around it, the base model answers the demo questions before, the tuned model after.
A second run skips every stage that is up to date.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import DISCLAIMER
from .config.schema import RunConfig
from .pipeline import PipelineResult, TrainOutput

# The demo question a 135M instruct model gets wrong out of the box (seen on SmolLM2-135M-Instruct:
# "Pneumothorax is the most likely diagnosis"), and a second cardiology case.
DEMO_QUESTIONS = [
    "A 60-year-old man presents with crushing chest pain radiating to the left arm and diaphoresis. "
    "Which condition is most likely: pneumothorax, myocardial infarction, pneumonia or GERD?",
    "A 45-year-old woman has sharp chest pain that is worse lying flat and better sitting forward, "
    "with a pericardial friction rub. What is the most likely diagnosis?",
]
RECIPE = "quickstart"  # the packaged recipe (medtune/resources/recipes/quickstart.yaml)


@dataclass
class QuickstartResult:
    run_dir: Path
    answers: dict[str, list[str]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    pipeline: PipelineResult | None = None


def ask(model, tokenizer, questions: list[str], max_new_tokens: int = 128) -> list[str]:
    from .infer import generate_texts

    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True) for q in questions]
    return generate_texts(model, tokenizer, prompts, max_new_tokens=max_new_tokens)


def print_answers(title: str, questions: list[str], answers: list[str], echo=print) -> None:
    echo(f"\n=== {title} ===")
    for q, a in zip(questions, answers):
        echo(f"Q: {q}\nA: {a}\n")
    echo(f"[{DISCLAIMER}]")


def _timed(result: QuickstartResult, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    result.timings[name] = round(time.perf_counter() - t0, 1)
    return out


def quickstart_config(run_dir: str | Path | None = None, overrides: list[str] | None = None,
                      echo: Callable[[str], None] = print) -> RunConfig:
    """The packaged recipe with ``overrides``; K-quants are dropped (with a note) where llama-cpp-python is missing."""
    from .config import load_config
    from .export import llama_cpp_available
    from .export.quantize import needs_llama_cpp

    cfg = load_config(RECIPE, ([f"run_dir={run_dir}"] if run_dir else []) + list(overrides or []))
    kquants = [q for q in cfg.export.gguf if needs_llama_cpp(q)]
    if kquants and not llama_cpp_available():
        echo(f"note: {', '.join(kquants)} skipped: llama-cpp-python is not installed (pip install 'medtune[gguf]')")
        cfg = cfg.model_copy(update={"export": cfg.export.model_copy(update={"gguf": [q for q in cfg.export.gguf if q not in kquants]})})
    return cfg


def run_quickstart(run_dir: str | Path | None = None, echo: Callable[[str], None] = print, *,
                   overrides: list[str] | None = None, progress: bool = True) -> QuickstartResult:
    """Demo answers of the base, `medtune run` on the quickstart recipe, demo answers of the tuned model."""
    from .models.load import load_model
    from .pipeline import RunLayout, run_pipeline
    from .train import load_trained

    cfg = quickstart_config(run_dir, overrides, echo)
    result = QuickstartResult(RunLayout.of(cfg).root)
    base = _timed(result, "load_base_s", load_model, cfg.model.base, revision=cfg.model.revision)
    echo(f"Loaded the base {cfg.model.base} in {result.timings['load_base_s']:.1f} s ({base.path}).")
    result.answers["base"] = _timed(result, "answer_base_s", ask, base.model, base.tokenizer, DEMO_QUESTIONS)
    print_answers("Base model (before fine-tuning)", DEMO_QUESTIONS, result.answers["base"], echo)
    del base

    result.pipeline = _timed(result, "pipeline_s", run_pipeline, cfg, echo=echo, progress=progress)
    for o in result.pipeline.outcomes:
        result.timings[f"{o.stage}_s"] = o.seconds

    trained = result.pipeline.get(TrainOutput)
    tuned = load_trained(trained.run_dir)
    result.answers["tuned"] = _timed(result, "answer_tuned_s", ask, tuned.model, tuned.tokenizer, DEMO_QUESTIONS)
    print_answers("Tuned model (after fine-tuning)", DEMO_QUESTIONS, result.answers["tuned"], echo)
    echo("timings (s): " + ", ".join(f"{k}={v}" for k, v in result.timings.items()))
    return result
