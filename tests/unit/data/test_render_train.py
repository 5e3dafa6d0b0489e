"""Rendering for training: loss masks, the mask audit, and truncation that never cuts the answer."""

from __future__ import annotations

import pytest

from medtune.data.records import Answer, Record
from medtune.data.render import (
    IGNORE_INDEX,
    SHORTEN_MARK,
    RenderRefused,
    format_masked_preview,
    render_example,
    render_prompt,
    render_records,
)

REASONING = "Crushing pain radiating to the left arm with diaphoresis suggests myocardial ischemia. " * 12


def mcq(reasoning: str | None = REASONING, **kw) -> Record:
    return Record.create(source="t", task="mcq", question="A 58-year-old man has chest pain. Diagnosis?",
                         options={"A": "Myocardial infarction", "B": "GERD"}, answer=Answer(letter="A"),
                         reasoning=reasoning, **kw)


def decoded_loss_text(tok, ex) -> str:
    return tok.decode([t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE_INDEX])


def check_prompt_prefix(tok, record, ex, fmt="sections"):
    """The masked prefix is byte for byte the inference prompt (one rendering path)."""
    prompt_ids = tok(render_prompt(tok, record, fmt), add_special_tokens=False)["input_ids"]
    assert ex.input_ids[: len(prompt_ids)] == prompt_ids
    assert all(lab == IGNORE_INDEX for lab in ex.labels[: len(prompt_ids)])
    assert ex.labels[len(prompt_ids)] != IGNORE_INDEX


@pytest.mark.parametrize("fmt", ["think", "sections", "plain"])
def test_loss_only_on_assistant_turn(tiny_tokenizer, fmt):
    rec = mcq()
    ex = render_example(tiny_tokenizer, rec, fmt, max_length=1024)
    check_prompt_prefix(tiny_tokenizer, rec, ex, fmt)
    trained = decoded_loss_text(tiny_tokenizer, ex)
    assert "myocardial ischemia" in trained and "The answer is (A) Myocardial infarction." in trained
    assert "58-year-old" not in trained
    assert ex.n_trainable == sum(lab != IGNORE_INDEX for lab in ex.labels)


def test_answer_only_masks_reasoning(tiny_tokenizer):
    ex = render_example(tiny_tokenizer, mcq(), "think", max_length=1024, loss_on="answer_only")
    trained = decoded_loss_text(tiny_tokenizer, ex)
    assert trained.startswith("The answer is (A)") and "ischemia" not in trained


def test_over_long_reasoning_is_shortened_in_the_middle_not_at_the_answer(tiny_tokenizer):
    full = render_example(tiny_tokenizer, mcq(), "sections", max_length=4096)
    ex = render_example(tiny_tokenizer, mcq(), "sections", max_length=len(full) - 60)
    assert ex.shortened and len(ex) <= len(full) - 60
    text = tiny_tokenizer.decode(ex.input_ids)
    assert SHORTEN_MARK.strip() in text
    assert text.rstrip().endswith("The answer is (A) Myocardial infarction.<|im_end|>")


def test_drop_mode_and_unfixable_samples_are_refused(tiny_tokenizer):
    with pytest.raises(RenderRefused) as e:
        render_example(tiny_tokenizer, mcq(), "sections", max_length=64, truncation="drop")
    assert e.value.reason == "too_long"
    # No reasoning to shorten: the prompt + answer alone cannot fit, so the sample is dropped.
    with pytest.raises(RenderRefused, match="cannot fit"):
        render_example(tiny_tokenizer, mcq(reasoning=None), "sections", max_length=20)


def test_zero_trainable_samples_are_refused_and_counted(tiny_tokenizer):
    """The silent-failure case: a sample whose assistant turn is cut away trains on nothing."""

    class CuttingTokenizer:  # wraps the real tokenizer but truncates like a careless pipeline
        def __init__(self, tok, keep):
            self.tok, self.keep = tok, keep

        def __getattr__(self, name):
            return getattr(self.tok, name)

        def __call__(self, text, **kw):
            enc = self.tok(text, **kw)
            return {k: v[: self.keep] for k, v in enc.items()}

    rec = mcq(reasoning=None)
    prompt_len = len(tiny_tokenizer(render_prompt(tiny_tokenizer, rec, "plain"), add_special_tokens=False)["input_ids"])
    examples, report = render_records(CuttingTokenizer(tiny_tokenizer, prompt_len), [rec, rec], "plain", max_length=512)
    assert examples == [] and report.refused_zero_trainable == 2
    assert report.problems[0]["reason"] == "zero_trainable"


def test_report_counts_add_up(tiny_tokenizer):
    recs = [mcq(), mcq(reasoning=None), mcq(reasoning="short")]
    full = render_example(tiny_tokenizer, recs[0], "sections", max_length=4096)
    examples, report = render_records(tiny_tokenizer, recs + [mcq(reasoning=None, context="x " * 400)], "sections",
                                      max_length=len(full) - 40)
    assert report.rendered == 3 == len(examples)
    assert report.shortened == 1 and report.dropped_too_long == 1
    assert report.trainable_tokens == sum(e.n_trainable for e in examples)
    assert "dropped (too long) 1" in report.summary()


def test_preview_marks_masked_spans(tiny_tokenizer):
    ex = render_example(tiny_tokenizer, mcq(reasoning="short"), "sections", max_length=512)
    preview = format_masked_preview(tiny_tokenizer, ex)
    assert preview.startswith("[no-loss]<|im_start|>user")
    assert "<|im_start|>assistant\n[/no-loss]## Thinking" in preview


@pytest.mark.slow
def test_smollm2_tokenizer_masks_and_shortens(embedded_dir):
    from medtune.models.load import load_tokenizer

    tok = load_tokenizer(str(embedded_dir))
    rec = mcq()
    ex = render_example(tok, rec, "sections", max_length=2048)
    check_prompt_prefix(tok, rec, ex)
    assert decoded_loss_text(tok, ex).strip().endswith("The answer is (A) Myocardial infarction.<|im_end|>")
    short = render_example(tok, rec, "sections", max_length=len(ex) // 2)
    assert short.shortened and len(short) <= len(ex) // 2
    assert tok.decode(short.input_ids).rstrip().endswith("Myocardial infarction.<|im_end|>")
