"""`medtune quickstart`: the whole chain on the embedded defaults, on a CPU, in minutes.

Stages are added here as they land (synth -> train -> eval -> export); each one's output
feeds the next, and the demo questions show the base model's answers beside the tuned one's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from . import DISCLAIMER

# Two questions a 135M instruct model gets wrong out of the box (seen on SmolLM2-135M-Instruct:
# "Pneumothorax is the most likely diagnosis", and "bronchiolitis" for croup).
DEMO_QUESTIONS = [
    "A 60-year-old man presents with crushing chest pain radiating to the left arm and diaphoresis. "
    "Which condition is most likely: pneumothorax, myocardial infarction, pneumonia or GERD?",
    "A 3-year-old boy has a barking cough, inspiratory stridor and a low-grade fever that worsen at night. "
    "What is the most likely diagnosis?",
]


@dataclass
class QuickstartResult:
    run_dir: Path
    answers: dict[str, list[str]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def ask(model, tokenizer, questions: list[str], max_new_tokens: int = 64) -> list[str]:
    from .infer import generate_texts

    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True) for q in questions]
    return generate_texts(model, tokenizer, prompts, max_new_tokens=max_new_tokens)


def print_answers(title: str, questions: list[str], answers: list[str], echo=print) -> None:
    echo(f"\n=== {title} ===")
    for q, a in zip(questions, answers):
        echo(f"Q: {q}\nA: {a}\n")
    echo(f"[{DISCLAIMER}]")


def run_quickstart(run_dir: str | Path = "runs/quickstart", echo=print) -> QuickstartResult:
    from .models.load import load_model

    result = QuickstartResult(Path(run_dir))
    result.run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base = load_model("smollm2-135m")
    result.timings["load_base_s"] = time.perf_counter() - t0
    echo(f"Loaded the embedded base SmolLM2-135M-Instruct in {result.timings['load_base_s']:.1f} s ({base.path}).")
    t0 = time.perf_counter()
    result.answers["base"] = ask(base.model, base.tokenizer, DEMO_QUESTIONS)
    result.timings["answer_base_s"] = time.perf_counter() - t0
    print_answers("Base model (before fine-tuning)", DEMO_QUESTIONS, result.answers["base"], echo)
    return result
