"""Verifiable rewards for the second training stage, with TRL's reward-function signature.

Each term is a function ``(prompts, completions, **columns) -> list[float | None]`` that
``trl.GRPOTrainer`` calls with the dataset's columns (here ``gold`` and ``options``, the
options as JSON) and logs on its own (``rewards/<name>/mean``); the config's
``train.rl.rewards`` weights them. What is rewarded is exactly what is scored: correctness
goes through ``medtune.eval.extract.extract_answer``, the extractor of ``medtune eval``
(cot protocol) and ``medtune eval score``, so a completion that names several letters
("A or C", "the answer is A. So B.") is *conflicting* and earns nothing, as it scores nothing.

* ``correct`` -- 1.0 when the extracted letter is the gold letter, else 0.0;
* ``format`` -- 1.0 when the completion keeps the reasoning format: the reasoning part first,
  its markers once each and in order, then a final part that states one answer; else 0.0;
* ``length`` -- 0.0 up to 80 % of the completion budget, then down to -1.0 at the budget
  (the overlong penalty of DAPO): rambling until cut off costs, a full answer does not.

>>> import json
>>> opts = json.dumps({"A": "Pericarditis", "B": "Aortic dissection"})
>>> r = correct_reward(["", ""], ["## Final Response\\n\\nThe answer is (B).", "Answer: A or B"],
...                    gold=["B", "B"], options=[opts, opts])
>>> r
[1.0, 0.0]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ..config.sections.train import RewardWeights
from ..data.render import (
    SECTION_FINAL,
    SECTION_THINK,
    THINK_CLOSE,
    THINK_OPEN,
    assistant_text,
    split_reasoning,
)
from ..eval.extract import extract_answer

RewardFn = Callable[..., list[float | None]]


def _text(completion: Any) -> str:
    """A completion as text: TRL passes strings for text prompts, message lists for conversational ones."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


def _prompts(prompts: Sequence[Any] | None, completions: Sequence[Any]) -> list[str]:
    """The rendered prompts as text (medtune passes rendered strings): where a template opened the reasoning
    (``data.render.assistant_text``); a conversational prompt, rendered by TRL, reads as no prompt."""
    return [p if isinstance(p, str) else "" for p in prompts] if prompts else [""] * len(completions)


def _options(value: Any) -> dict[str, str]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def correct_reward(prompts: Sequence[Any], completions: Sequence[Any], *, gold: Sequence[str | None],
                   options: Sequence[Any], reasoning_format: str | None = None, **_: Any) -> list[float | None]:
    """1.0 where the eval extractor reads the gold letter from the completion; None for items without a gold letter."""
    out: list[float | None] = []
    for prompt, completion, letter, opts in zip(_prompts(prompts, completions), completions, gold, options):
        if not letter:
            out.append(None)
            continue
        found = extract_answer(assistant_text(prompt, _text(completion)), _options(opts), reasoning_format)
        out.append(1.0 if found.status == "ok" and found.letter == letter else 0.0)
    return out


def format_ok(text: str, fmt: str | None, options: dict[str, str]) -> bool:
    """Reasoning, then exactly one final part that states exactly one answer, with the format's markers in order.

    >>> opts = {"A": "x", "B": "y"}
    >>> format_ok("## Thinking\\n\\nFever.\\n\\n## Final Response\\n\\nThe answer is (A) x.", "sections", opts)
    True
    >>> format_ok("## Final Response\\n\\nA\\n\\n## Final Response\\n\\nB", "sections", opts)
    False
    >>> format_ok("<think>\\nhm\\n</think>\\n\\nThe answer is (A) or (B).", "think", opts)
    False
    """
    markers = {"sections": (SECTION_THINK, SECTION_FINAL), "think": (THINK_OPEN, THINK_CLOSE)}.get(fmt or "")
    if markers:
        first, second = markers
        if text.count(first) != 1 or text.count(second) != 1 or text.index(first) > text.index(second):
            return False
    reasoning, final = split_reasoning(text, fmt)
    if not reasoning.strip() or not final.strip():
        return False
    return extract_answer(text, options, fmt).status == "ok"


def format_reward(prompts: Sequence[Any], completions: Sequence[Any], *, options: Sequence[Any],
                  reasoning_format: str | None = None, **_: Any) -> list[float | None]:
    """1.0 for a completion in the trained reasoning format with one stated answer (``format_ok``), else 0.0."""
    return [1.0 if format_ok(assistant_text(p, _text(c)), reasoning_format, _options(o)) else 0.0
            for p, c, o in zip(_prompts(prompts, completions), completions, options)]


def length_penalty(prompts: Sequence[Any], completions: Sequence[Any], *, completion_ids: Sequence[Sequence[int]] | None = None,
                   max_completion_length: int = 128, **_: Any) -> list[float | None]:
    """0 up to 80 % of the token budget, then linearly down to -1 at the budget.

    >>> length_penalty(["", "", ""], ["", "", ""], completion_ids=[[0] * 50, [0] * 90, [0] * 100], max_completion_length=100)
    [0.0, -0.5, -1.0]
    """
    lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else [len(_text(c)) // 4 for c in completions]
    start = 0.8 * max_completion_length
    over = [min(1.0, max(0.0, (n - start) / (max_completion_length - start))) for n in lengths]
    return [round(-x, 6) if x else 0.0 for x in over]


def reward_functions(weights: RewardWeights, reasoning_format: str, max_completion_length: int) -> tuple[list[RewardFn], list[float]]:
    """The weighted reward terms for GRPO, each bound to the run's reasoning format and budget; zero weights are left out.

    >>> fns, w = reward_functions(RewardWeights(correct=1.0, format=0.1, length=0.0), "sections", 128)
    >>> [f.__name__ for f in fns], w
    (['correct', 'format'], [1.0, 0.1])
    """
    terms: list[tuple[str, RewardFn, float]] = [("correct", correct_reward, weights.correct),
                                                ("format", format_reward, weights.format),
                                                ("length", length_penalty, weights.length)]
    fns, ws = [], []
    for name, fn, w in terms:
        if w == 0:
            continue

        def bound(prompts: Any, completions: Any, _fn: RewardFn = fn, **kw: Any) -> list[float | None]:
            return _fn(prompts, completions, reasoning_format=reasoning_format,
                       max_completion_length=max_completion_length, **kw)

        bound.__name__ = name  # TRL logs each term as rewards/<__name__>
        fns.append(bound)
        ws.append(w)
    return fns, ws


def total_reward(weights: RewardWeights, reasoning_format: str, max_completion_length: int, completions: Sequence[str],
                 gold: Sequence[str], options: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None) -> list[float]:
    """The weighted sum GRPO maximises, for ranking sampled completions (on-policy preference pairs)."""
    fns, ws = reward_functions(weights, reasoning_format, max_completion_length)
    prompts = [""] * len(completions)
    columns = {"gold": list(gold), "options": list(options), "completion_ids": completion_ids}
    per_term = [fn(prompts, list(completions), **columns) for fn in fns]
    return [sum(w * (vals[i] or 0.0) for w, vals in zip(ws, per_term)) for i in range(len(completions))]
