"""Turn a record into chat messages and text with the base model's reasoning format.

Training and inference use these same functions, so the prompt a model is trained on
is byte for byte the prompt it is asked at evaluation and serving time.

Reasoning formats:
  * ``think``    -- ``<think>\\n{reasoning}\\n</think>\\n\\n{final}`` (DeepSeek-R1 family, Qwen3)
  * ``sections`` -- ``## Thinking\\n\\n{reasoning}\\n\\n## Final Response\\n\\n{final}`` (HuatuoGPT-o1 style)
  * ``plain``    -- ``{reasoning}\\n\\n{final}``
"""

from __future__ import annotations

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


def split_reasoning(text: str, fmt: str | None = None) -> tuple[str, str]:
    """Split generated text into (reasoning, final answer part).

    >>> split_reasoning("<think>a</think>\\nB is right")
    ('a', 'B is right')
    >>> split_reasoning("## Thinking\\nhmm\\n## Final Response\\nC")
    ('hmm', 'C')
    """
    if THINK_CLOSE in text:
        head, _, tail = text.rpartition(THINK_CLOSE)
        return head.replace(THINK_OPEN, "").strip(), tail.strip()
    if SECTION_FINAL in text:
        head, _, tail = text.rpartition(SECTION_FINAL)
        return head.replace(SECTION_THINK, "").strip(), tail.strip()
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
