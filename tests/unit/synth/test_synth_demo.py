"""The focused demo training set: every cited finding is in the question, answers are offered, draws are seeded."""

from __future__ import annotations

import re

import pytest

from medtune.data.render import build_user_prompt
from medtune.synth.demo import demo_records, write_demo_training_set
from medtune.synth.writeup import lc_first


def _findings(reasoning: str) -> list[str]:
    first = reasoning.splitlines()[0]
    assert first.startswith("Key findings: ")
    return [x.strip() for x in first[len("Key findings: "):].rstrip(".").split(";")]


def test_reasoning_cites_only_what_the_question_states():
    records = list(demo_records(120, seed=3, specialties=["cardiology", "pulmonology"]))
    assert len(records) == 240
    for r in records:
        stem = r.question.lower()
        for item in _findings(r.reasoning):
            assert item.lower().strip('"') in stem, (item, r.question)
        conclusion = f"these findings point to {r.answer_text}."
        if r.options:  # lettered: the options walked in the prompt's order up to the answer, which says yes
            letters = list(r.options)
            walked = "; ".join(f"{k}. {r.options[k]} - {'yes' if k == r.answer.letter else 'no'}"
                               for k in letters[:letters.index(r.answer.letter) + 1])
            assert r.reasoning.endswith(f"{conclusion}\nOptions: {walked}."), r.reasoning
        elif "Which condition is most likely:" in r.question:  # inline choices: walked in words, in the question's order
            head, walk = r.reasoning.rsplit("\nOptions: ", 1)
            assert head.endswith(conclusion), r.reasoning
            *passed, last = walk.rstrip(".").split("; ")
            assert last == f"{lc_first(r.answer_text)} - yes" and all(p.endswith(" - no") for p in passed)
            choices = r.question.rsplit("Which condition is most likely: ", 1)[1]
            at = [choices.index(p[:-len(" - no")]) for p in passed] + [choices.index(last[:-len(" - yes")])]
            assert at == sorted(at), (walk, choices)
        else:
            assert r.reasoning.endswith(conclusion) and "Options:" not in r.reasoning


def test_inline_choices_offer_the_answer_and_lettered_ones_keep_their_letter():
    records = list(demo_records(200, seed=4, specialties=["cardiology"], tasks=("mcq",)))
    inline = [r for r in records if r.options is None]
    lettered = [r for r in records if r.options]
    assert 0.3 < len(inline) / len(records) < 0.7
    for r in inline:
        assert r.task == "diagnosis" and "Which condition is most likely:" in r.question
        assert r.answer_text[:1].lower() + r.answer_text[1:] in r.question or r.answer_text in r.question
        assert r.response == f"The most likely diagnosis is {r.answer_text}."
    for r in lettered:
        assert r.options[r.answer.letter] == r.answer_text and "\n\nA. " in build_user_prompt(r)


def _has_result(r) -> bool:
    last = _findings(r.reasoning)[-1]
    return bool(re.search(r"\((high|low)\)$", last)) or ":" in last  # a flagged lab, or "Study: finding"


def test_history_only_share_and_atypical_cases_keep_their_result():
    records = list(demo_records(300, seed=5, specialties=["cardiology", "pulmonology"], tasks=("diagnosis",)))
    share = 1 - sum(map(_has_result, records)) / len(records)
    assert 0.35 < share < 0.7, share  # 60% of typical cases are history-only; atypical ones always keep their result
    atypical = [r for r in records if r.metadata["atypical"]]
    assert atypical and all(map(_has_result, atypical))
    always = list(demo_records(300, seed=5, specialties=["cardiology", "pulmonology"], tasks=("diagnosis",),
                               history_only_share=0.0))
    assert sum(map(_has_result, always)) / len(always) > 0.9


def test_same_seed_same_bytes(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert write_demo_training_set(a, 40, seed=0, specialties=["cardiology"]) == 80
    write_demo_training_set(b, 40, seed=0, specialties=["cardiology"])
    assert a.read_bytes() == b.read_bytes()


def test_direct_share_adds_answer_only_twins_and_changes_nothing_else():
    from medtune.config.sections.synth import SynthSection
    from medtune.data.render import build_messages
    from medtune.eval.runners import CHAT_ANSWER_CUE

    plain = list(demo_records(40, 0, tasks=("diagnosis", "mcq")))
    mixed = list(demo_records(40, 0, tasks=("diagnosis", "mcq"), direct_share=1.0))
    half = list(demo_records(40, 0, tasks=("diagnosis", "mcq"), direct_share=0.5))
    assert [r for r in mixed if not r.metadata.get("direct")] == plain  # the other records are the same bytes
    lettered = [r for r in plain if r.options]
    twins = {r.id: r for r in mixed if r.metadata.get("direct")}
    assert len(twins) == len(lettered) and 0 < sum(r.metadata.get("direct", False) for r in half) < len(lettered)
    for r in lettered:
        twin = twins[r.id + "-direct"]
        assert (twin.question, twin.options, twin.answer) == (r.question, r.options, r.answer) and twin.reasoning is None
        answer = build_messages(twin, "sections")[-1]["content"]
        # exactly the context the loglik protocol's chat style scores, then the letter and the option text
        assert answer == f"## Final Response\n\n{CHAT_ANSWER_CUE}{r.answer.letter}) {r.answer.text}."
    assert mixed.index(twins[lettered[0].id + "-direct"]) == mixed.index(lettered[0]) + 1
    with pytest.raises(ValueError, match="direct_share writes twins of the demo style"):
        SynthSection(style="cases", direct_share=0.5)


def test_conclusion_first_reorders_the_reasoning_lines_and_changes_nothing_else():
    from medtune.config.sections.synth import SynthSection
    from medtune.synth.demo import CONCLUSION_CUE

    plain = list(demo_records(40, 0, tasks=("diagnosis", "mcq")))
    first = list(demo_records(40, 0, tasks=("diagnosis", "mcq"), reasoning_order="conclusion_first"))
    assert [r.model_copy(update={"reasoning": None}) for r in first] == [r.model_copy(update={"reasoning": None}) for r in plain]
    for p, f in zip(plain, first):
        lines_p, lines_f = p.reasoning.split("\n"), f.reasoning.split("\n")
        assert sorted(lines_p) == sorted(lines_f)  # the same lines
        assert lines_p[0].startswith("Key findings: ") and lines_f[-1] == lines_p[0]
        assert lines_f[0] == f"{CONCLUSION_CUE} {p.answer_text}."
        if p.options:  # the walk follows the conclusion and ends at the answer's letter, before any finding
            assert lines_f[1].startswith("Options: A. ") and lines_f[1].endswith(f"{p.answer.letter}. {p.answer_text} - yes.")
    with pytest.raises(ValueError, match="reasoning_order"):
        list(demo_records(2, 0, reasoning_order="last"))
    with pytest.raises(ValueError, match="reasoning_order orders the demo style"):
        SynthSection(style="cases", reasoning_order="conclusion_first")
    assert SynthSection(style="demo", reasoning_order="conclusion_first").reasoning_order == "conclusion_first"


def test_heldout_patients_never_repeat_a_training_vignette(tmp_path):
    """Quickstart settings, seed 0: held-out case syn-1-000013 has training case syn-0-000154's vignette word for word
    (the short demo stems coincide across seeds), and other seed 1 cases repeat a training vignette with only its
    numbers changed (an age, a heart rate). They are left out and the next seed + 1 cases take their place."""
    from medtune.config import load_config
    from medtune.data.io import read_records
    from medtune.pipeline.stages.synth import run_synth_stage
    from medtune.synth.demo import case_key

    section = load_config(None, ["synth.style=demo", "synth.n=155", "synth.seed=0", "synth.specialties=[cardiology]",
                                 "synth.tasks=[diagnosis,mcq]", "synth.heldout_cases=14"]).synth
    said: list[str] = []
    result = run_synth_stage(section, tmp_path, echo=said.append)
    training = {case_key(r.question) for r in read_records(result.records)}
    heldout = list(read_records(result.heldout))
    assert result.heldout_count == len(heldout) == 14
    assert not [r.id for r in heldout if case_key(r.question) in training]
    old = list(demo_records(56, seed=1, specialties=["cardiology"], tasks=("mcq",), inline_share=0.0))
    left_out = [r.id for r in old if case_key(r.question) in training]
    assert "syn-1-000013-mcq" in left_out and len(left_out) > 1  # word for word, and with other numbers
    assert [r.id for r in heldout] == [r.id for r in old if r.id not in left_out][:14]  # the same draws, in order
    replaced = len([i for i in left_out if int(i.split("-")[2]) <= int(heldout[-1].id.split("-")[2])])
    assert len(said) == 1 and f"{replaced} seed 1 case(s) left out" in said[0] and "took their place" in said[0]
