"""The second stage's rewards: scored by the eval extractor, and not hackable by format or by naming several letters."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from medtune.config.sections.train import RewardWeights
from medtune.data.records import Answer, Record
from medtune.eval.runners import score_output
from medtune.train.rewards import (
    correct_reward,
    format_reward,
    length_penalty,
    reward_functions,
    total_reward,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
from test_extract import CASES  # noqa: E402  (the extractor's hand-written adversarial cases)

SECTIONS = "## Thinking\n\n{r}\n\n## Final Response\n\n{f}"
DX = {"A": "Aortic dissection", "B": "Acute pericarditis", "C": "Pulmonary embolism", "D": "Tension pneumothorax"}


@pytest.mark.parametrize(("text", "options", "fmt", "letter", "status"), CASES, ids=[c[0][:40] for c in CASES])
def test_reward_agrees_with_eval_scoring_on_every_extractor_case(text, options, fmt, letter, status):
    """One extractor: for every gold letter, the reward is 1 exactly where `medtune eval` scores the output correct."""
    for gold in options:
        record = Record.create(source="t", task="mcq", question="Q?", options=options, answer=Answer(letter=gold))
        scored = score_output(record, [text], fmt)["correct"]
        reward = correct_reward([""], [text], gold=[gold], options=[json.dumps(options)], reasoning_format=fmt)[0]
        assert reward == float(scored), (gold, scored, reward)
        if status != "ok":
            assert reward == 0.0  # several letters, hedges, no answer: never a correctness reward


@pytest.mark.parametrize("hedge", ["The answer is (A) or (C).", "Answer: A, B, C or D", "A. B. C. D.",
                                   "The answer is A. So C.", "Either option A or option C."])
def test_naming_several_letters_earns_no_correctness_reward(hedge):
    got = correct_reward([""] * 4, [SECTIONS.format(r="Chest pain.", f=hedge)] * 4, gold=list("ABCD"),
                         options=[json.dumps(DX)] * 4, reasoning_format="sections")
    assert got == [0.0, 0.0, 0.0, 0.0]


def test_format_alone_cannot_tell_a_right_answer_from_a_wrong_one():
    """Anti-hacking: under a format-only reward, a right and a wrong answer in the same format tie, so GRPO's
    group advantage between them is zero -- formatting cannot raise accuracy. With the correctness term they do not tie."""
    right = SECTIONS.format(r="Tearing pain to the back, pulse deficit.", f="The answer is (A) Aortic dissection.")
    wrong = SECTIONS.format(r="Tearing pain to the back, pulse deficit.", f="The answer is (C) Pulmonary embolism.")
    opts = [json.dumps(DX)] * 2
    fmt_only = total_reward(RewardWeights(correct=0.0, format=1.0), "sections", 128, [right, wrong], ["A", "A"], opts)
    assert fmt_only[0] == fmt_only[1] == 1.0
    default = total_reward(RewardWeights(), "sections", 128, [right, wrong], ["A", "A"], opts)
    assert default[0] > default[1]


def test_format_reward_needs_the_markers_in_order_and_one_answer():
    opts = [json.dumps(DX)]
    ok = SECTIONS.format(r="Pleuritic pain relieved by leaning forward.", f="The answer is (B) Acute pericarditis.")
    assert format_reward([""], [ok], options=opts, reasoning_format="sections") == [1.0]
    for bad in ["## Final Response\n\nThe answer is (B).\n\n## Thinking\n\nhm",  # out of order
                "The answer is (B).",  # no reasoning part
                SECTIONS.format(r="x", f="Maybe B, maybe C."),  # no stated answer
                SECTIONS.format(r="x", f="The answer is (B).") + "\n\n## Final Response\n\nThe answer is (C)."]:
        assert format_reward([""], [bad], options=opts, reasoning_format="sections") == [0.0], bad


def test_length_penalty_starts_at_eighty_percent_and_is_logged_on_its_own():
    assert length_penalty([""] * 4, [""] * 4, completion_ids=[[0] * n for n in (10, 80, 90, 120)],
                          max_completion_length=100) == [0.0, 0.0, -0.5, -1.0]
    fns, weights = reward_functions(RewardWeights(correct=1.0, format=0.2, length=0.5), "think", 64)
    assert [f.__name__ for f in fns] == ["correct", "format", "length"] and weights == [1.0, 0.2, 0.5]


def test_on_policy_pairs_put_the_best_sample_against_the_worst(monkeypatch, tiny_tokenizer):
    """The starting model's own samples, ranked by the GRPO reward; a prompt whose samples tie gives no pair."""
    import medtune.infer as infer
    from medtune.config.sections.train import RLSection
    from medtune.train.pairs import on_policy_pairs

    right = SECTIONS.format(r="Tearing pain.", f="The answer is (A) Aortic dissection.")
    wrong = SECTIONS.format(r="Tearing pain.", f="The answer is (C) Pulmonary embolism.")
    samples = [wrong, right, wrong, wrong] + [wrong] * 4  # item 1: a right one among wrong ones; item 2: all wrong
    seen = {}

    def fake_generate(model, tok, prompts, *, num_samples, **kw):
        seen.update(prompts=len(prompts), samples=num_samples, **kw)
        return samples

    monkeypatch.setattr(infer, "generate_texts", fake_generate)
    recs = [Record.create(source="t", task="mcq", question=f"Case {i}?", options=DX, answer=Answer(letter="A")) for i in range(2)]
    pairs = on_policy_pairs(None, tiny_tokenizer, recs, "sections", None, rl=RLSection(), samples=4, seed=3)
    assert seen["prompts"] == 2 and seen["samples"] == 4 and seen["seed"] == 3
    assert [(p.chosen, p.rejected, p.kind) for p in pairs] == [(right, wrong, "on_policy")]


def test_synth_pairs_of_walked_reasoning_are_coherent_and_the_reward_ranks_them(tiny_tokenizer):
    """Where the reasoning walks the options (data.render.options_walk), each rejected answer walks to its
    wrong option and names it: the pair differs in the walk's verdicts, the letter and the text together,
    and the correctness reward (the eval extractor) prefers the chosen answer every time."""
    from medtune.synth import generate_records
    from medtune.train.pairs import synth_pairs

    recs = list(generate_records(24, seed=2, tasks=["mcq"], compact=True))
    pairs = synth_pairs(recs, tiny_tokenizer, "sections", None)
    assert len(pairs) == 2 * len(recs) >= 40
    for r, (led, letter) in zip(recs, zip(pairs[::2], pairs[1::2], strict=True), strict=True):
        for p in (led, letter):
            walk = next(line for line in p.rejected.splitlines() if line.startswith("Options: "))
            k, text = walk.rstrip(".").rsplit("; ", 1)[-1].removeprefix("Options: ").split(". ", 1)
            text = text.removesuffix(" - yes")
            assert k != r.answer.letter and r.options[k] == text, walk  # the walk stops at the wrong option
            assert p.rejected.endswith(f"The answer is ({k}) {text}.")  # ...and answers it, coherently
            kept = next(line for line in p.chosen.splitlines() if line.startswith("Options: "))
            kept = kept.removeprefix("Options: ").rstrip(".").split("; ")
            for item in walk.removeprefix("Options: ").rstrip(".").split("; ")[:-1]:
                if item[0] < r.answer.letter:  # passed over in the record's walk too: the same words, reasons kept
                    assert item in kept, (item, kept)
        assert f" to {r.answer.text}.\n" in letter.rejected and f" to {r.answer.text}.\n" not in led.rejected  # conclusions
        rewards = correct_reward(["", ""], [led.chosen, led.rejected], gold=[r.answer.letter] * 2,
                                 options=[r.options] * 2, reasoning_format="sections")
        assert rewards == [1.0, 0.0]


R1_PROMPT = "<｜User｜>Which option?<｜Assistant｜><think>\n"  # DeepSeek-R1-Distill opens the reasoning in the prompt


def test_a_template_that_opens_the_reasoning_in_the_prompt_is_read_as_think_output():
    """TRL's completions for R1-Distill never contain <think>: the reasoning opener is put back from the prompt, so a
    well-formed completion earns its format reward and one cut off mid-reasoning earns no correctness reward."""
    opts = json.dumps({"A": "Aortic dissection", "B": "Acute pericarditis"})
    done = "Pulses are unequal.\n</think>\n\nThe answer is (A) Aortic dissection."
    cut = "Pulses are unequal, so the answer is (A). But wait, the rub"
    assert format_reward([R1_PROMPT], [done], options=[opts], reasoning_format="think") == [1.0]
    assert correct_reward([R1_PROMPT], [done], gold=["A"], options=[opts], reasoning_format="think") == [1.0]
    assert correct_reward([R1_PROMPT], [cut], gold=["A"], options=[opts], reasoning_format="think") == [0.0]
    # the eval runner reads the same turn: the cut-off output is unparseable there too
    from medtune.eval.runners import run_cot

    class R1Like:
        reasoning_format = "think"

        def prompt(self, record, system_prompt=None):
            return R1_PROMPT

        def generate(self, records, **_):
            return [[cut], [done]]

    records = [Record.create(source="t", task="mcq", question=f"Q{i}?", options=json.loads(opts), answer=Answer(letter="A"))
               for i in range(2)]
    rows = run_cot(R1Like(), records)
    assert [(r["pred"], r["status"]) for r in rows] == [(None, "unparseable"), ("A", "ok")]
