"""End to end on the embedded SmolLM2-135M with the shipped quickstart recipe (~12 minutes on 2 cores).

1,000 focused synthetic cardiology records (500 cases x diagnosis + mcq), 200 LoRA steps: the
held-out eval loss falls clearly and the tuned model answers the demo chest-pain question
("crushing chest pain radiating to the left arm and diaphoresis") with myocardial infarction,
where the base model says pneumothorax. It also has to diagnose new synthetic patients (seed 1)
far above chance, so the flip is not a lucky answer to one question, and answer the same patients'
lettered MCQ with the letter of the option its reasoning concluded (no collapse onto one letter).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from medtune.config import load_config
from medtune.quickstart import DEMO_QUESTIONS, ask
from medtune.synth.demo import demo_records, write_demo_training_set
from medtune.train import load_trained, train

REPO = Path(__file__).resolve().parents[2]
MI = ("myocardial infarction", "acute coronary syndrome")


def final_part(text: str) -> str:
    return text.split("## Final Response")[-1].lower()


def _lists_a_choice(question: str, output: str) -> bool:
    """Whether the output's Key findings line names one of the question's inline choices that its vignette does not."""
    import re

    asked = re.search(r":\s*([^:?]+)\?\s*$", question.strip())
    if not asked or " or " not in asked.group(1):
        return False
    choices = [c.strip().lower() for c in re.split(r",\s*|\s+or\s+", asked.group(1)) if c.strip()]
    stem = question[: asked.start()].lower()
    findings = next((ln for ln in output.splitlines() if ln.startswith("Key findings:")), "").lower()
    return any(c in findings and c not in stem for c in choices)


@pytest.mark.slow
def test_quickstart_recipe_on_the_embedded_model(tmp_path):
    from medtune.data.render import build_user_prompt
    from medtune.eval.extract import extract_answer
    from medtune.infer import generate_texts
    from medtune.models.load import load_model

    question = DEMO_QUESTIONS[0]
    base = load_model("smollm2-135m")
    before = ask(base.model, base.tokenizer, [question], max_new_tokens=48)[0]
    # The premise (seen on SmolLM2-135M-Instruct): the base model names pneumothorax, unformatted.
    assert "pneumothorax" in before.lower() and "## Final Response" not in before, before
    del base

    cfg = load_config(REPO / "configs/quickstart.yaml", check_hardware=True, cuda_available=False)
    specialties = cfg.synth.specialties  # cardiology: the demo's focus
    data = tmp_path / "demo.jsonl"
    assert write_demo_training_set(data, n_cases=500, seed=0, specialties=specialties) == 1000
    result = train(cfg, data, tmp_path / "run", progress=False)
    assert result.first_eval_loss is not None and result.final_eval_loss < 0.2 * result.first_eval_loss, result
    audit = result.manifest["render_audit"]["train"]
    assert audit["refused_zero_trainable"] == 0 and audit["rendered"] >= 950

    tuned = load_trained(result.run_dir)
    after = ask(tuned.model, tuned.tokenizer, [question], max_new_tokens=128)[0]
    assert after.startswith("## Thinking") and "## Final Response" in after, after
    assert any(k in final_part(after) for k in MI) and "pneumothorax" not in final_part(after), after
    # The choices are walked after the conclusion, never listed as findings (a model trained to walk only
    # lettered choices listed these inline ones as key findings and lost the answer).
    findings = next((line for line in after.splitlines() if line.startswith("Key findings:")), "")
    assert findings and "pneumothorax" not in findings.split("Conclusion:")[0].lower(), after
    # ... and on new patients asked with inline choices: a habit, not one answer (0 of 60 listed a choice when measured)
    inline = list(demo_records(40, seed=1, specialties=specialties, tasks=("mcq",), inline_share=1.0))
    prompts = [tuned.tokenizer.apply_chat_template([{"role": "user", "content": build_user_prompt(r)}], tokenize=False,
                                                   add_generation_prompt=True) for r in inline]
    outs = generate_texts(tuned.model, tuned.tokenizer, prompts, max_new_tokens=128, batch_size=20)
    listed = [o for r, o in zip(inline, outs) if _lists_a_choice(r.question, o)]
    assert len(listed) <= 0.1 * len(inline), (len(listed), listed[:2])

    heldout = list(demo_records(40, seed=1, specialties=specialties, tasks=("diagnosis",)))
    prompts = [tuned.tokenizer.apply_chat_template([{"role": "user", "content": build_user_prompt(r)}], tokenize=False,
                                                   add_generation_prompt=True) for r in heldout]
    outs = generate_texts(tuned.model, tuned.tokenizer, prompts, max_new_tokens=128, batch_size=20)
    acc = sum(r.answer_text.lower() in final_part(o) for r, o in zip(heldout, outs)) / len(heldout)
    assert acc >= 0.6, (acc, outs[:3])  # 6 cardiology conditions: chance is ~0.17

    # The same new patients as lettered MCQ: the written letter follows the reasoning (the options walk).
    # Before the walk this model named the right condition under one collapsed letter (0.23, "D" 71%).
    mcq = [r for r in demo_records(40, seed=1, specialties=specialties, tasks=("mcq",), inline_share=0.0) if r.options]
    prompts = [tuned.tokenizer.apply_chat_template([{"role": "user", "content": build_user_prompt(r)}], tokenize=False,
                                                   add_generation_prompt=True) for r in mcq]
    outs = generate_texts(tuned.model, tuned.tokenizer, prompts, max_new_tokens=192, batch_size=20)
    letters = [extract_answer(o, r.options, "sections").letter for r, o in zip(mcq, outs)]  # as `eval` reads it
    mcq_acc = sum(x == r.answer.letter for x, r in zip(letters, mcq)) / len(mcq)
    top_share = Counter(letters).most_common(1)[0][1] / len(mcq)
    assert mcq_acc >= 0.6 and top_share <= 0.5, (mcq_acc, Counter(letters), outs[:2])
    print(f"\nbefore: {before!r}\nafter: {after!r}\neval loss {result.first_eval_loss:.3f} -> {result.final_eval_loss:.3f}; "
          f"held-out diagnosis accuracy {acc:.3f} (n={len(heldout)}); lettered MCQ {mcq_acc:.3f}, letters {Counter(letters)}; "
          f"{result.tokens_per_s:.1f} tokens/s; wall {result.wall_time_s:.0f} s")
