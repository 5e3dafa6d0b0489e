"""Turn a record into chat messages and text with the base model's reasoning format.

Training and inference use these same functions, so the prompt a model is trained on
is byte for byte the prompt it is asked at evaluation and serving time.

Reasoning formats:
  * ``think``    -- ``<think>\\n{reasoning}\\n</think>\\n\\n{final}`` (DeepSeek-R1 family, Qwen3)
  * ``sections`` -- ``## Thinking\\n\\n{reasoning}\\n\\n## Final Response\\n\\n{final}`` (HuatuoGPT-o1 style)
  * ``plain``    -- ``{reasoning}\\n\\n{final}``
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .records import Record

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
SECTION_THINK, SECTION_FINAL = "## Thinking", "## Final Response"


def build_user_prompt(record: Record) -> str:
    """The user turn: optional context, the question, lettered options, and the answer instruction.

    >>> from medtune.data.records import Answer
    >>> r = Record.create(source="t", task="mcq", question="Q?", options={"A": "x", "B": "y"}, answer=Answer(letter="A"))
    >>> print(build_user_prompt(r))
    Q?
    <BLANKLINE>
    A. x
    B. y
    <BLANKLINE>
    Answer with the letter of the correct option.
    """
    parts = []
    if record.context:
        parts.append(f"Context:\n{record.context.strip()}")
    parts.append(record.question.strip())
    if record.options:
        parts.append("\n".join(f"{k}. {v}" for k, v in record.options.items()))
        parts.append("Answer with the letter of the correct option.")
    return "\n\n".join(parts)


def final_answer_text(record: Record) -> str:
    """The final answer as the model should say it; MCQ answers always state the letter.

    >>> from medtune.data.records import Answer
    >>> r = Record.create(source="t", task="mcq", question="Q?", options={"A": "x", "B": "y"}, answer=Answer(letter="B"))
    >>> final_answer_text(r)
    'The answer is (B) y.'
    """
    if record.options and record.answer.letter:
        head = f"The answer is ({record.answer.letter}) {record.options[record.answer.letter].rstrip('.')}."
        if record.response and record.response.strip() and record.response.strip() != head:
            return f"{head}\n\n{record.response.strip()}"
        return head
    return (record.response or record.answer.text or "").strip()


def options_walk(options: dict[str, str], letter: str, reasons: dict[str, str] | None = None,
                 lettered: bool = True) -> str:
    """The offered options checked in the prompt's order, up to the answer, which comes last.

    The quickstart's tuned 135M model named the right condition under a collapsed letter: it does
    not learn from a final line alone which letter the option it concluded carries, but it copies
    a list easily. Walking "A. X - no; B. Y - yes." copies the options as the prompt shows them,
    compares each with the conclusion above it, and leaves the answer's letter where the final
    line copies it. ``reasons`` (option text -> why not) weigh the options passed over.
    ``lettered=False`` walks choices written inline in the question ("pneumothorax - no; ..."):
    one habit for both kinds of choices, so option names are walked, never listed as findings.

    >>> options_walk({"A": "Pericarditis", "B": "Aortic dissection", "C": "Pneumothorax"}, "B",
    ...              {"Pericarditis": "pain eased by sitting forward"})
    'Options: A. Pericarditis - no (pain eased by sitting forward); B. Aortic dissection - yes.'
    >>> options_walk({"A": "pneumothorax", "B": "myocardial infarction", "C": "GERD"}, "B", lettered=False)
    'Options: pneumothorax - no; myocardial infarction - yes.'
    """
    walked = []
    for k, text in options.items():
        name = f"{k}. {text}" if lettered else text
        if k == letter:
            walked.append(f"{name} - yes")
            break
        reason = (reasons or {}).get(text, "").replace("; ", ", ")  # "; " separates the walked options
        walked.append(f"{name} - no ({reason})" if reason else f"{name} - no")
    return "Options: " + "; ".join(walked) + "."


def format_assistant(reasoning: str | None, final: str, fmt: str) -> str:
    """Lay out reasoning and final answer in one reasoning format.

    >>> format_assistant("Because.", "The answer is (A) x.", "think")
    '<think>\\nBecause.\\n</think>\\n\\nThe answer is (A) x.'
    """
    reasoning = (reasoning or "").strip()
    if fmt == "think":
        return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{final}"
    if fmt == "sections":
        return f"{SECTION_THINK}\n\n{reasoning}\n\n{SECTION_FINAL}\n\n{final}" if reasoning else f"{SECTION_FINAL}\n\n{final}"
    if fmt == "plain":
        return f"{reasoning}\n\n{final}" if reasoning else final
    raise ValueError(f"unknown reasoning format {fmt!r}: use think, sections or plain")


def has_reasoning_markers(text: str) -> bool:
    """Whether ``text`` opens or closes a reasoning block (``<think>``, ``## Thinking``, ...)."""
    return any(m in text for m in (THINK_OPEN, THINK_CLOSE, SECTION_THINK, SECTION_FINAL))


def assistant_text(prompt: str, completion: str) -> str:
    """The assistant turn as the model wrote it, from its prompt and its completion.

    A template that opens the reasoning in the generation prompt (DeepSeek-R1-Distill's ends with
    ``<think>\\n``) leaves the completion without its opener; it is put back, so the reasoning is
    split, and reasoning cut off by the token budget recognised, as in any other think output.

    >>> assistant_text("<|Assistant|><think>\\n", "so (A). But wait")
    '<think>\\nso (A). But wait'
    >>> assistant_text("<|im_start|>assistant\\n", "The answer is (A).")
    'The answer is (A).'
    """
    if prompt.rstrip().endswith(THINK_OPEN) and THINK_OPEN not in completion:
        return f"{THINK_OPEN}\n{completion}"
    return completion


def split_reasoning(text: str, fmt: str | None = None) -> tuple[str, str]:
    """Split generated text into (reasoning, final answer part).

    Reasoning that opens and never closes (``<think>`` without ``</think>``: the output was cut off)
    has no final part, so a letter weighed in it is never read as the answer.

    >>> split_reasoning("<think>a</think>\\nB is right")
    ('a', 'B is right')
    >>> split_reasoning("## Thinking\\nhmm\\n## Final Response\\nC")
    ('hmm', 'C')
    >>> split_reasoning("<think>so the answer is (A). But wait")
    ('so the answer is (A). But wait', '')
    """
    if THINK_CLOSE in text:
        head, _, tail = text.rpartition(THINK_CLOSE)
        return head.replace(THINK_OPEN, "").strip(), tail.strip()
    if SECTION_FINAL in text:
        head, _, tail = text.rpartition(SECTION_FINAL)
        return head.replace(SECTION_THINK, "").strip(), tail.strip()
    if has_reasoning_markers(text):  # reasoning opened and never closed (cut off by max_new_tokens): no final part
        return text.replace(THINK_OPEN, "").replace(SECTION_THINK, "").strip(), ""
    if fmt == "plain" and "\n\n" in text.strip():
        head, _, tail = text.strip().rpartition("\n\n")
        return head.strip(), tail.strip()
    return "", text.strip()


def build_messages(record: Record, fmt: str, system_prompt: str | None = None, with_answer: bool = True) -> list[dict[str, Any]]:
    """Chat messages for a record; ``with_answer=False`` stops before the assistant turn."""
    msgs: list[dict[str, Any]] = []
    if system_prompt:
        msgs.append({"role": "system", "content": system_prompt})
    msgs.append({"role": "user", "content": build_user_prompt(record)})
    if with_answer:
        msgs.append({"role": "assistant", "content": format_assistant(record.reasoning, final_answer_text(record), fmt)})
    return msgs


def render_prompt(tokenizer: Any, record: Record, fmt: str, system_prompt: str | None = None) -> str:
    """The inference prompt: chat template up to and including the assistant header."""
    return tokenizer.apply_chat_template(
        build_messages(record, fmt, system_prompt, with_answer=False), tokenize=False, add_generation_prompt=True
    )


def render_messages_prompt(tokenizer: Any, messages: list[dict[str, Any]]) -> str:
    """Inference prompt for free-form chat messages (serving uses this)."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# --------------------------------------------------------------------------------------
# Rendering for training: token ids + loss mask, with a mask audit and safe truncation.
# --------------------------------------------------------------------------------------

IGNORE_INDEX = -100  # label value that torch.nn.functional.cross_entropy skips
SHORTEN_MARK = " [...] "  # stands where the middle of an over-long reasoning was cut


@dataclass
class RenderedExample:
    """One training sample: ``labels[i] == IGNORE_INDEX`` wherever no loss is taken."""

    record_id: str
    input_ids: list[int]
    labels: list[int]
    n_trainable: int
    shortened: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class RenderReport:
    """The mask audit: what was rendered, shortened, dropped or refused, and why."""

    rendered: int = 0
    shortened: int = 0
    dropped_too_long: int = 0
    refused_zero_trainable: int = 0
    tokens: int = 0
    trainable_tokens: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (f"rendered {self.rendered}, reasoning shortened {self.shortened}, dropped (too long) "
                f"{self.dropped_too_long}, refused (zero trainable tokens) {self.refused_zero_trainable}; "
                f"{self.trainable_tokens}/{self.tokens} tokens carry loss")


class RenderRefused(ValueError):
    """A record that cannot become a sound training sample; ``reason`` is a short code."""

    def __init__(self, record_id: str, reason: str, detail: str):
        self.record_id, self.reason, self.detail = record_id, reason, detail
        super().__init__(f"record {record_id}: {reason}: {detail}")


def _full_text(tokenizer: Any, record: Record, fmt: str, system_prompt: str | None) -> tuple[str, int, int]:
    """Render prompt + assistant turn; return (text, prompt_end_char, final_answer_start_char).

    The prompt part is exactly :func:`render_prompt` (what inference sends). When a chat template
    rewrites the assistant turn (DeepSeek-R1's strips everything before ``</think>``), the turn is
    appended verbatim after the prompt, closed by the EOS token, so the reasoning is never lost.
    """
    prompt = render_prompt(tokenizer, record, fmt, system_prompt)
    final = final_answer_text(record)
    content = format_assistant(record.reasoning, final, fmt)
    full = tokenizer.apply_chat_template(build_messages(record, fmt, system_prompt), tokenize=False)
    if not (full.startswith(prompt) and full[len(prompt):].startswith(content)):
        overlap = next((k for k in range(min(len(prompt), len(content)), 0, -1) if prompt.endswith(content[:k])), 0)
        full = prompt + content[overlap:] + (tokenizer.eos_token or "")
    answer_at = full.rfind(final, len(prompt)) if final else -1
    return full, len(prompt), answer_at if answer_at >= 0 else len(full)


def _tokenize_with_mask(tokenizer: Any, text: str, loss_from: int) -> tuple[list[int], list[int]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [t if start >= loss_from else IGNORE_INDEX for t, (start, _end) in zip(ids, enc["offset_mapping"])]
    return ids, labels


def _shorten_reasoning(tokenizer: Any, reasoning: str, drop_tokens: int) -> str | None:
    """Cut ``drop_tokens`` tokens out of the middle of the reasoning; None if it is too short."""
    ids = tokenizer(reasoning, add_special_tokens=False)["input_ids"]
    keep = len(ids) - drop_tokens
    if keep < 8:
        return None
    head, tail = ids[: keep // 2], ids[len(ids) - (keep - keep // 2):]
    return tokenizer.decode(head).rstrip() + SHORTEN_MARK + tokenizer.decode(tail).lstrip()


def render_example(
    tokenizer: Any,
    record: Record,
    fmt: str,
    *,
    system_prompt: str | None = None,
    loss_on: str = "reasoning_answer",
    max_length: int = 512,
    truncation: str = "shorten_reasoning",
) -> RenderedExample:
    """Token ids and labels for one record, rendered exactly as inference renders its prompt.

    Loss is taken on the assistant turn only (``reasoning_answer``) or on the final answer only
    (``answer_only``). An over-long sample is never cut at the end, which would silently train
    on a missing answer: it is dropped, or the middle of its reasoning is shortened. Raises
    :class:`RenderRefused` for samples that must not be trained on.
    """
    if loss_on not in ("reasoning_answer", "answer_only"):
        raise ValueError(f"loss_on must be reasoning_answer or answer_only, got {loss_on!r}")
    shortened = False
    for _attempt in range(4):
        text, prompt_end, answer_at = _full_text(tokenizer, record, fmt, system_prompt)
        ids, labels = _tokenize_with_mask(tokenizer, text, prompt_end if loss_on == "reasoning_answer" else answer_at)
        excess = len(ids) - max_length
        if excess <= 0:
            break
        if truncation == "drop":
            raise RenderRefused(record.id, "too_long", f"{len(ids)} tokens > max_length {max_length} (truncation=drop)")
        new = _shorten_reasoning(tokenizer, record.reasoning or "", excess + 8) if record.reasoning else None
        if new is None:
            raise RenderRefused(record.id, "too_long",
                                f"{len(ids)} tokens > max_length {max_length} and shortening the reasoning cannot fit "
                                "without cutting the question or the final answer")
        record, shortened = record.model_copy(update={"reasoning": new}), True
    else:
        raise RenderRefused(record.id, "too_long", f"still {len(ids)} tokens after shortening the reasoning")
    n_trainable = sum(1 for x in labels if x != IGNORE_INDEX)
    if n_trainable == 0:
        raise RenderRefused(record.id, "zero_trainable", f"no token carries loss (loss_on={loss_on}); check the answer")
    return RenderedExample(record.id, ids, labels, n_trainable, shortened)


def render_records(
    tokenizer: Any, records: Iterable[Record], fmt: str, **options: Any
) -> tuple[list[RenderedExample], RenderReport]:
    """Render many records and audit them: refused samples are reported, never trained on."""
    examples, report = [], RenderReport()
    for record in records:
        try:
            ex = render_example(tokenizer, record, fmt, **options)
        except RenderRefused as e:
            if e.reason == "zero_trainable":
                report.refused_zero_trainable += 1
            else:
                report.dropped_too_long += 1
            report.problems.append({"id": e.record_id, "reason": e.reason, "detail": e.detail})
            continue
        examples.append(ex)
        report.rendered += 1
        report.shortened += ex.shortened
        report.tokens += len(ex)
        report.trainable_tokens += ex.n_trainable
    return examples, report


def masked_segments(tokenizer: Any, example: RenderedExample) -> list[tuple[str, bool]]:
    """Consecutive (text, carries_loss) spans of a rendered example, for previews."""
    segments: list[tuple[str, bool]] = []
    start = 0
    flags = [label != IGNORE_INDEX for label in example.labels]
    for i in range(1, len(flags) + 1):
        if i == len(flags) or flags[i] != flags[start]:
            segments.append((tokenizer.decode(example.input_ids[start:i]), flags[start]))
            start = i
    return segments


def format_masked_preview(tokenizer: Any, example: RenderedExample) -> str:
    """Plain-text preview: spans without loss are wrapped in ``[no-loss]...[/no-loss]``."""
    return "".join(text if trained else f"[no-loss]{text}[/no-loss]" for text, trained in masked_segments(tokenizer, example))
