"""Report fixtures made by the real code: a tiny-model run folder, and a 4,000-item evaluation.

``build_tiny_run`` lays a folder out like the quickstart's (train/, eval/base, eval/tuned,
eval/compare.json, export/) by running medtune's own train, compare_models, evaluate and
export_run on a 2-layer random Llama, trained for a few seconds-per-step so that it learns the
answer format: the untrained base produces no answer, the tuned model states a letter, and
items flip from wrong to right.

``build_large_eval`` writes two 4,000-item evaluations and their comparison through the
real writers (evaluate -> PredictionStore, summary.json, compare_runs); only the model's
text comes from ``ScriptedBackend``, a stand-in for a model that answers instantly.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from medtune.data.records import Answer, Record
from medtune.data.render import build_user_prompt

FINDINGS = [
    ("crushing chest pain radiating to the left arm and diaphoresis", "Myocardial infarction"),
    ("a barking cough and inspiratory stridor", "Croup"),
    ("sudden pleuritic chest pain after a long flight", "Pulmonary embolism"),
    ("fever, neck stiffness and photophobia", "Bacterial meningitis"),
    ("wheeze and nocturnal cough relieved by a bronchodilator", "Asthma"),
]
SPECIALTIES = ["cardiology", "pulmonology", "neurology"]
# Untrusted text as a model (or a dataset) might produce it: it must show as text and never run.
HOSTILE = ('</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> '
           'see https://example.org/x <!-- ')


def mcq_records(n: int, start: int = 0, seed: int = 0, five_options_every: int = 0) -> list[Record]:
    """n lettered MCQs in the record schema; options shuffled (so gold letters vary); every k-th item has 5 options."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        finding, dx = FINDINGS[i % 4]
        k = 5 if five_options_every and i % five_options_every == 0 else 4
        names = [d for _, d in FINDINGS[:k]]
        rng.shuffle(names)
        options = dict(zip("ABCDE", names))
        letter = next(x for x, v in options.items() if v == dx)
        out.append(Record.create(source="test", task="mcq", question=f"Case {i}: a patient has {finding}. Diagnosis?",
                                 options=options, answer=Answer(letter=letter),
                                 metadata={"specialty": SPECIALTIES[i % 3]}))
    return out


def write_jsonl(path: Path, records: list[Record]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    return path


def build_tiny_run(root: Path, name: str = "run") -> Path:
    """root/NAME laid out like runs/quickstart, made by train, compare_models (cot), evaluate (loglik) and export."""
    from tiny import build_tiny_model_dir

    from medtune.config import load_config
    from medtune.eval.backends import build_backend
    from medtune.eval.benchmarks import BenchmarkSpec, LoglikSpec
    from medtune.eval.evaluate import compare_models, evaluate
    from medtune.export import export_run
    from medtune.train import train

    base = build_tiny_model_dir(root / "tiny", hidden=64)
    run = root / name
    data = write_jsonl(run / "data" / "train.jsonl", mcq_records(48))
    cfg = load_config(None, [f"model.base={base}", "data.max_length=224", "data.val_fraction=0.1", "train.method=full",
                             "train.batch_size=4", "train.logging_steps=2", "train.max_steps=60",
                             "train.learning_rate=1e-2", "train.warmup_steps=2", "train.eval_steps=10"])
    train(cfg, data, run / "train", progress=False)
    heldout = mcq_records(24, start=1000, seed=1)
    compare_models(str(base), run / "train", heldout, run / "eval", protocol="cot", max_new_tokens=48,
                   batch_size=24, device="cpu", log=lambda *_: None)
    spec = BenchmarkSpec(name="heldout", files="-", description="held-out records", loglik=LoglikSpec(style="chat"))
    backend = build_backend(str(run / "train"), batch_size=12, device="cpu")
    evaluate(backend, spec, heldout, run / "eval" / "tuned-loglik", protocol="loglik", log=lambda *_: None)
    # verify=False: llama-cpp-python is not needed for the F16 file; the report must then say "unverified"
    export_run(run / "train", run / "export", quants=["f16"], verify=False)
    return run


class ScriptedBackend:
    """Answers instantly with texts in the shapes real models produce (right, wrong, unparseable, two answers)."""

    name = "scripted"
    reasoning_format = "think"

    def __init__(self, label: str, skill: float, seed: int):
        self.label, self.skill, self.rng = label, skill, random.Random(seed)
        self.identity = f"scripted:{label}:skill={skill}:seed={seed}"  # what the eval fingerprint records

    def prompt(self, record: Record, system_prompt: str | None = None) -> str:
        return build_user_prompt(record)

    def _answer(self, record: Record) -> str:
        letters = list(record.options or {})
        gold = record.answer.letter
        roll = self.rng.random()
        reasoning = " ".join(["The findings point to one diagnosis."] * self.rng.randint(1, 12))
        if record.metadata.get("hostile"):
            return f"<think>\n{HOSTILE}\n</think>\n\nThe answer is ({gold}) {record.options[gold]}. {HOSTILE}"
        if roll < 0.05:
            final = "It could be several of these."  # unparseable
        elif roll < 0.08:
            final = f"Answer: {letters[0]} or {letters[1]}"  # conflicting
        else:
            letter = gold if roll < 0.08 + self.skill else self.rng.choice([x for x in letters if x != gold])
            final = f"The answer is ({letter}) {record.options[letter]}."
        return f"<think>\n{reasoning}\n</think>\n\n{final}"

    def generate(self, records: list[Record], **_: Any) -> list[list[str]]:
        return [[self._answer(r)] for r in records]


def build_large_eval(root: Path, n: int = 4000) -> Path:
    """root/eval with base/ and tuned/ (n items each, cot rows in the real format) and compare.json/.html."""
    from medtune.eval.benchmarks import BenchmarkSpec
    from medtune.eval.evaluate import evaluate
    from medtune.eval.report import compare_runs

    records = mcq_records(n, seed=2, five_options_every=3)
    records[0] = records[0].model_copy(update={"question": records[0].question + " " + HOSTILE,
                                               "metadata": {**records[0].metadata, "hostile": True}})
    spec = BenchmarkSpec(name="medmcqa-like", files="-", description="synthetic 4/5-option MCQ")
    out = root / "eval"
    for label, skill, seed in (("base", 0.35, 0), ("tuned", 0.6, 1)):
        evaluate(ScriptedBackend(label, skill, seed), spec, records, out / label, protocol="cot",
                 chunk_size=500, write_report=False, log=lambda *_: None)
    compare_runs(out / "base", out / "tuned", out)
    return out
