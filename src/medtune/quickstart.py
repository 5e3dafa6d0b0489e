"""`medtune quickstart`: the whole chain on the embedded defaults, on a CPU, in ~20 minutes.

synth (focused synthetic cardiology cases) -> train (LoRA on SmolLM2-135M) -> eval (base vs tuned
on held-out synthetic MCQ by chain of thought, Wilson intervals + McNemar) -> export (merge, GGUF
Q8_0, Q4_K_M when llama.cpp is installed, verified against the merged model) -> the demo
questions again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import DISCLAIMER

# The demo question a 135M instruct model gets wrong out of the box (seen on SmolLM2-135M-Instruct:
# "Pneumothorax is the most likely diagnosis"), and a second cardiology case.
DEMO_QUESTIONS = [
    "A 60-year-old man presents with crushing chest pain radiating to the left arm and diaphoresis. "
    "Which condition is most likely: pneumothorax, myocardial infarction, pneumonia or GERD?",
    "A 45-year-old woman has sharp chest pain that is worse lying flat and better sitting forward, "
    "with a pericardial friction rub. What is the most likely diagnosis?",
]
RECIPE = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
# The demo trains on one specialty: ~12 minutes of 2-core CPU training (~100k tokens) teach the 6
# cardiology conditions well (held-out accuracy ~0.97); spread over 12 conditions (cardiology +
# pulmonology) the same budget shows each one too few times to answer the demo question.
DEMO_SPECIALTIES = ["cardiology"]


@dataclass
class QuickstartResult:
    run_dir: Path
    answers: dict[str, list[str]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    stages: dict[str, Any] = field(default_factory=dict)


def ask(model, tokenizer, questions: list[str], max_new_tokens: int = 128) -> list[str]:
    from .infer import generate_texts

    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True) for q in questions]
    return generate_texts(model, tokenizer, prompts, max_new_tokens=max_new_tokens)


def print_answers(title: str, questions: list[str], answers: list[str], echo=print) -> None:
    echo(f"\n=== {title} ===")
    for q, a in zip(questions, answers):
        echo(f"Q: {q}\nA: {a}\n")
    echo(f"[{DISCLAIMER}]")


def _timed(result: QuickstartResult, name: str, fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    result.timings[name] = round(time.perf_counter() - t0, 1)
    return out


def stage_data(run_dir: Path, n_cases: int, heldout_cases: int) -> tuple[Path, list]:
    """Focused synthetic training records, and held-out lettered MCQ from another seed (new patients)."""
    from .synth.demo import demo_records, write_demo_training_set

    train_path = run_dir / "data" / "train.jsonl"
    write_demo_training_set(train_path, n_cases=n_cases, seed=0, specialties=DEMO_SPECIALTIES)
    heldout = list(demo_records(heldout_cases, seed=1, specialties=DEMO_SPECIALTIES, tasks=("mcq",), inline_share=0.0))
    return train_path, heldout


def stage_eval(run_dir: Path, heldout: list, base: str = "smollm2-135m", max_new_tokens: int = 128) -> dict:
    """Base vs RUN/train on the held-out MCQ into RUN/eval/{base,tuned}.

    A re-run retrains, so its evaluation starts over (``overwrite``): rows of the previous
    tuned model are never reported as the new one's.
    """
    from .eval.evaluate import compare_models

    return compare_models(base, run_dir / "train", heldout, run_dir / "eval", protocol="cot", max_new_tokens=max_new_tokens,
                          batch_size=16, log=lambda *_: None, overwrite=True)


def stage_export(train_dir: Path, run_dir: Path) -> dict:
    from .export import export_run, llama_cpp_available

    quants = ["q8_0"] + (["q4_k_m"] if llama_cpp_available() else [])
    return export_run(train_dir, run_dir / "export", quants=quants, verify=True)


def run_quickstart(run_dir: str | Path = "runs/quickstart", echo=print, *, n_cases: int = 500,
                   heldout_cases: int = 120, overrides: list[str] | None = None) -> QuickstartResult:
    from .config import load_config
    from .models.load import load_model
    from .train import load_trained, train

    result = QuickstartResult(Path(run_dir))
    result.run_dir.mkdir(parents=True, exist_ok=True)
    base = _timed(result, "load_base_s", load_model, "smollm2-135m")
    echo(f"Loaded the embedded base SmolLM2-135M-Instruct in {result.timings['load_base_s']:.1f} s ({base.path}).")
    result.answers["base"] = _timed(result, "answer_base_s", ask, base.model, base.tokenizer, DEMO_QUESTIONS)
    print_answers("Base model (before fine-tuning)", DEMO_QUESTIONS, result.answers["base"], echo)
    del base

    echo("\n=== 1/4 synth: focused synthetic cardiology cases ===")
    train_path, heldout = _timed(result, "synth_s", stage_data, result.run_dir, n_cases, heldout_cases)
    echo(f"{train_path} ({n_cases} cases x diagnosis+mcq), {len(heldout)} held-out MCQ from another seed")

    echo("\n=== 2/4 train: LoRA on SmolLM2-135M ===")
    cfg = load_config(RECIPE, overrides or [])
    tr = _timed(result, "train_s", train, cfg, train_path, result.run_dir / "train")
    result.stages["train"] = {"first_eval_loss": tr.first_eval_loss, "final_eval_loss": tr.final_eval_loss,
                              "steps": tr.steps, "tokens_per_s": tr.tokens_per_s}
    echo(f"eval loss {tr.first_eval_loss:.3f} -> {tr.final_eval_loss:.3f} in {tr.steps} steps ({tr.tokens_per_s:.0f} tokens/s)")

    echo("\n=== 3/4 eval: base vs tuned on held-out synthetic MCQ (cot: greedy, 128 new tokens, strict extraction) ===")
    cmp = _timed(result, "eval_s", stage_eval, result.run_dir, heldout)
    result.stages["eval"] = cmp
    d = cmp["difference_b_minus_a"]
    base_acc, tuned_acc = cmp["base"], cmp["tuned"]
    echo(f"accuracy base {base_acc['accuracy']:.3f} {base_acc['ci95']} -> tuned {tuned_acc['accuracy']:.3f} "
         f"{tuned_acc['ci95']} (Wilson 95%, n={tuned_acc['n']}); gain {d['gain']:+.3f} "
         f"(95% CI {d['ci95'][0]} to {d['ci95'][1]}), McNemar p = {cmp['mcnemar']['p_value']:.3g}; "
         f"report: {result.run_dir / 'eval'}")

    echo("\n=== 4/4 export: merge, GGUF, verify ===")
    ex = _timed(result, "export_s", stage_export, result.run_dir / "train", result.run_dir)
    result.stages["export"] = ex
    for q, info in ex.get("files", {}).items():
        echo(f"{q}: {info['path']} ({info['bytes'] / 2**20:.0f} MiB)")
    for row in ex.get("verify", []):
        echo(f"verify {row}")

    tuned = load_trained(result.run_dir / "train")
    result.answers["tuned"] = _timed(result, "answer_tuned_s", ask, tuned.model, tuned.tokenizer, DEMO_QUESTIONS)
    print_answers("Tuned model (after fine-tuning)", DEMO_QUESTIONS, result.answers["tuned"], echo)
    echo("timings (s): " + ", ".join(f"{k}={v}" for k, v in result.timings.items()))
    return result
