"""End to end on the embedded SmolLM2-135M with the shipped quickstart recipe: 1,000 compact
synthetic records, 16 LoRA steps; held-out eval loss falls clearly and the tuned model answers
the demo chest-pain question in the trained reasoning format.

Not asserted (and not yet achieved with this budget): that the answer flips from pneumothorax to
myocardial infarction. A verified run (eval loss 2.32 -> 0.44) answered "Key findings: ...
crushing chest pain radiating to the left arm; diaphoresis. ... The answer is (A) Pneumothorax":
it learned the format and picked the first listed option.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medtune.config import load_config
from medtune.quickstart import DEMO_QUESTIONS, ask
from medtune.train import load_trained, train
from medtune.train.quickdata import write_demo_training_set

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quickstart_recipe_on_the_embedded_model(tmp_path):
    from medtune.models.load import load_model

    question = DEMO_QUESTIONS[0]
    base = load_model("smollm2-135m")
    before = ask(base.model, base.tokenizer, [question], max_new_tokens=48)[0]
    # The premise (seen on SmolLM2-135M-Instruct): the base model names pneumothorax, unformatted.
    assert "pneumothorax" in before.lower() and "## Final Response" not in before, before
    del base

    data = tmp_path / "demo.jsonl"
    assert write_demo_training_set(data, n_cases=500, seed=0, specialties=["cardiology", "pulmonology"]) == 1000
    cfg = load_config(REPO / "configs/quickstart.yaml", check_hardware=True, cuda_available=False)
    result = train(cfg, data, tmp_path / "run", progress=False)

    assert result.first_eval_loss is not None and result.final_eval_loss < 0.6 * result.first_eval_loss, result
    audit = result.manifest["render_audit"]["train"]
    assert audit["refused_zero_trainable"] == 0 and audit["rendered"] >= 950
    tuned = load_trained(result.run_dir)
    after = ask(tuned.model, tuned.tokenizer, [question], max_new_tokens=128)[0]
    assert after.startswith("## Thinking") and "## Final Response" in after, after
    print(f"\nbefore: {before!r}\nafter: {after!r}\neval loss {result.first_eval_loss:.3f} -> {result.final_eval_loss:.3f}; "
          f"{result.tokens_per_s:.1f} tokens/s; wall {result.wall_time_s:.0f} s")
