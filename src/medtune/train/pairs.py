"""Data of the second training stage: verifiable prompts (GRPO) and preference pairs (DPO/ORPO).

Prompts are rendered by ``medtune.data.render`` exactly as ``eval`` and ``serve`` ask them
(chat template, system prompt, reasoning format), so a stage optimises the very prompt it is
scored on. Pairs come from three places:

* **imported** -- JSONL/JSON rows ``{"prompt", "chosen", "rejected"}`` (strings: the user's
  turn and the two assistant answers), or messages-style: ``chosen`` / ``rejected`` as message
  lists sharing their prefix (UltraFeedback / TRL conversational), ``prompt`` optional as a
  message list. A bad row goes to quarantine naming file, line, field and reason.
* **synth** -- from lettered MCQ records: the record's own reasoning and answer, against the
  same answer led to a distractor (the reasoning's conclusion and the final answer name the
  distractor) and against the right conclusion with a wrong letter (the collapse this stage
  exists to fix: the reasoning names the condition, the letter does not match it).
* **on-policy** -- the starting model's own samples (medtune's batched generation), ranked by
  the GRPO reward (``rewards.total_reward``): best against worst where they differ.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data.importers.base import iter_raw_rows
from ..data.quality import Quarantine
from ..data.records import Record
from ..data.render import (
    final_answer_text,
    format_assistant,
    options_walk,
    render_messages_prompt,
    render_prompt,
)


@dataclass(frozen=True)
class PreferencePair:
    id: str
    prompt: str  # rendered: chat template up to the assistant header
    chosen: str  # assistant completion
    rejected: str
    kind: str  # imported | wrong_conclusion | wrong_letter | on_policy

    def row(self) -> dict[str, str]:
        return asdict(self)


def verifiable(records: Iterable[Record]) -> list[Record]:
    """Records a reward can check: options and a gold letter among them."""
    return [r for r in records if r.options and r.answer.letter in (r.options or {})]


def grpo_rows(records: Sequence[Record], tokenizer: Any, fmt: str, system_prompt: str | None) -> list[dict[str, str]]:
    """GRPO dataset rows: the rendered prompt, the gold letter and the options (JSON) the reward reads."""
    return [{"prompt": render_prompt(tokenizer, r, fmt, system_prompt), "gold": r.answer.letter,
             "options": json.dumps(r.options, ensure_ascii=False), "id": r.id} for r in verifiable(records)]


def trl_prompt(tokenizer: Any, prompt: str) -> str:
    """A rendered prompt as TRL's trainers should get it, so they tokenize it to the ids eval and serve use.

    medtune tokenizes a rendered prompt with ``add_special_tokens=False`` (the chat template carries any BOS);
    GRPO and DPO tokenize a string prompt with special tokens on, so a tokenizer that adds a BOS (Llama 3,
    DeepSeek-R1-Distill) would give [BOS, BOS, ...]. The template's BOS is then left to the tokenizer: dropped
    from the text only where that gives exactly the template's ids (the completion side is unchanged).

    >>> class Tok:  # adds a BOS "<s>" (id 0) like Llama 3's; one id per other character
    ...     bos_token = "<s>"
    ...     def __call__(self, text, add_special_tokens=True):
    ...         ids = [0] if text.startswith("<s>") else []
    ...         ids += [ord(c) for c in text.removeprefix("<s>")]
    ...         return {"input_ids": ([0] if add_special_tokens else []) + ids}
    >>> trl_prompt(Tok(), "<s>user: hi"), trl_prompt(Tok(), "user: hi")
    ('user: hi', 'user: hi')
    """
    bos = getattr(tokenizer, "bos_token", None)
    if bos and prompt.startswith(bos):
        rest = prompt[len(bos):]
        if tokenizer(rest)["input_ids"] == tokenizer(prompt, add_special_tokens=False)["input_ids"]:
            return rest
    return prompt


def _pick(record: Record, salt: str) -> str:
    """A distractor letter, a stable function of the record (so pair sets are reproducible)."""
    others = sorted(k for k in record.options if k != record.answer.letter)
    digest = int(hashlib.sha256(f"{record.id}:{salt}".encode()).hexdigest()[:8], 16)
    return others[digest % len(others)]


_WALKED_REASON = re.compile(r"(?:^|; )[A-Z]\. (.+?) - no \((.+?)\)(?=; |\.?$)", re.MULTILINE)  # one walked option's reason


def synth_pairs(records: Sequence[Record], tokenizer: Any, fmt: str, system_prompt: str | None) -> list[PreferencePair]:
    """Two pairs per lettered MCQ record: right vs. led to a distractor, right vs. right conclusion with a wrong letter
    (where the reasoning walks the options, ``options_walk``: the walk says yes to the wrong letter's option).

    >>> from medtune.data.records import Answer
    >>> r = Record.create(source="t", task="mcq", question="Q?", options={"A": "Gout", "B": "Cellulitis"},
    ...                   answer=Answer(letter="B"), reasoning="Warm red leg: this is Cellulitis.")
    >>> class Tok:
    ...     def apply_chat_template(self, msgs, **kw): return msgs[-1]["content"] + "|"
    >>> p = synth_pairs([r], Tok(), "plain", None)
    >>> [x.kind for x in p], p[0].rejected
    (['wrong_conclusion', 'wrong_letter'], 'Warm red leg: this is Gout.\\n\\nThe answer is (A) Gout.')
    >>> p[1].rejected
    'Warm red leg: this is Cellulitis.\\n\\nThe answer is (A) Cellulitis.'
    """
    out = []
    for r in verifiable(records):
        gold_text = r.options[r.answer.letter].rstrip(".")
        prompt = render_prompt(tokenizer, r, fmt, system_prompt)
        chosen = format_assistant(r.reasoning, final_answer_text(r), fmt)
        wrong = _pick(r, "conclusion")
        wrong_text = r.options[wrong].rstrip(".")
        # Led astray: the conclusion names the distractor and the options walk (if any) stops at it,
        # keeping the reasons the record's walk gave (so a pair does not differ in having them).
        head, walk, walked = (r.reasoning or "").partition("\nOptions: ")
        reasons = {m[1]: m[2] for m in _WALKED_REASON.finditer(walked)}
        led_astray = head.replace(gold_text, wrong_text) + ("\n" + options_walk(r.options, wrong, reasons) if walk else "")
        other = r.model_copy(update={"answer": r.answer.model_copy(update={"letter": wrong, "text": None}), "response": None})
        out.append(PreferencePair(f"{r.id}:conclusion", prompt, chosen, format_assistant(led_astray, final_answer_text(other), fmt),
                                  "wrong_conclusion"))
        wrong = _pick(r, "letter")
        if walk:  # the right conclusion, then the walk says yes to another option and answers it
            other = other.model_copy(update={"answer": r.answer.model_copy(update={"letter": wrong, "text": None})})
            mismatched = format_assistant(f"{head}\n{options_walk(r.options, wrong, reasons)}", final_answer_text(other), fmt)
        else:  # the right conclusion under another letter
            mismatched = format_assistant(r.reasoning, f"The answer is ({wrong}) {gold_text}.", fmt)
        out.append(PreferencePair(f"{r.id}:letter", prompt, chosen, mismatched, "wrong_letter"))
    return out


def is_pairs_file(path: str | Path) -> bool:
    """A JSON/JSONL file whose first row has ``chosen`` and ``rejected`` (an imported preference set)."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        first = next(iter_raw_rows(p), None)
    except Exception:  # unreadable files are the records reader's to report
        return False
    return bool(first is not None and isinstance(first.data, dict) and {"chosen", "rejected"} <= set(first.data))


def _assistant_text(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict) and value[-1].get("role") == "assistant":
        content = value[-1].get("content")
        if not isinstance(content, str) or not content.strip():
            raise ValueError(f"{field}: the last assistant message has no text content")
        return content
    raise ValueError(f"{field}: expected a string or a message list ending with an assistant message")


def _prompt_messages(row: dict[str, Any], system_prompt: str | None) -> list[dict[str, Any]]:
    prompt = row.get("prompt")
    if isinstance(prompt, str):
        msgs = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list):
        msgs = list(prompt)
    elif isinstance(row["chosen"], list) and isinstance(row["rejected"], list):
        msgs = list(row["chosen"][:-1])
        if msgs != list(row["rejected"][:-1]):
            raise ValueError("chosen/rejected: the two conversations differ before their last assistant message")
    else:
        raise ValueError("prompt: missing (needed unless chosen and rejected are message lists)")
    if not msgs or not all(isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") for m in msgs):
        raise ValueError("prompt: expected messages with role system, user or assistant")
    if not all(isinstance(m.get("content"), str) for m in msgs):  # a template would fail on it, or print "None"
        raise ValueError("prompt: every message needs a text `content`")
    if system_prompt and msgs[0]["role"] != "system":
        msgs = [{"role": "system", "content": system_prompt}, *msgs]
    return msgs


def _render(tokenizer: Any, messages: list[dict[str, Any]]) -> str:
    """The chat prompt of one row; a template that refuses the messages (jinja raises on e.g. two user turns in a row
    for some templates) is that row's problem, not the run's."""
    from jinja2 import TemplateError

    try:
        return render_messages_prompt(tokenizer, messages)
    except (TemplateError, TypeError) as e:
        raise ValueError(f"prompt: the chat template cannot render these messages ({type(e).__name__}: {e})") from None


def read_pairs(paths: Sequence[str | Path], tokenizer: Any, system_prompt: str | None, quarantine: Quarantine) -> list[PreferencePair]:
    """Imported preference pairs; rows that cannot be used go to ``quarantine`` with file, line, field and reason."""
    out = []
    for path in paths:
        for row in iter_raw_rows(path):
            if row.error is not None:
                quarantine.add(path, row.loc, row.error.field, row.error.reason, row.raw)
                continue
            data = row.data if isinstance(row.data, dict) else {}
            try:
                missing = [f for f in ("chosen", "rejected") if not data.get(f)]
                if missing:
                    raise ValueError(f"{missing[0]}: missing or empty")
                chosen, rejected = _assistant_text(data["chosen"], "chosen"), _assistant_text(data["rejected"], "rejected")
                if chosen.strip() == rejected.strip():
                    raise ValueError("rejected: identical to chosen (no preference to learn)")
                prompt = _render(tokenizer, _prompt_messages(data, system_prompt))
            except ValueError as e:
                field, _, reason = str(e).partition(": ")
                quarantine.add(path, row.loc, field, reason, row.raw)
                continue
            pid = str(data.get("id") or hashlib.sha256((prompt + chosen + rejected).encode()).hexdigest()[:16])
            out.append(PreferencePair(pid, prompt, chosen, rejected, "imported"))
    return out


def first_difference(pair: PreferencePair, tokenizer: Any) -> int:
    """The token position where the pair's two training sequences first differ: prompt + completion + EOS, tokenized
    as TRL's DPO and ORPO trainers do (the template's BOS once, see :func:`trl_prompt`; ORPO may add a BOS the
    template lacks, a shift of one: :func:`orpo_bos_shift`). A sequence that is a prefix of the other differs where it
    ends.

    >>> class Tok:  # one id per character
    ...     eos_token = "$"
    ...     def __call__(self, text, add_special_tokens=True): return {"input_ids": [ord(c) for c in text]}
    >>> first_difference(PreferencePair("p", "Q: ", "Gout.", "Gum.", "imported"), Tok())  # "Q: G" is shared
    4
    """
    eos = getattr(tokenizer, "eos_token", None) or ""
    a, b = (tokenizer(pair.prompt + text + eos, add_special_tokens=False)["input_ids"] for text in (pair.chosen, pair.rejected))
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def orpo_bos_shift(pair: PreferencePair, tokenizer: Any) -> int:
    """1 where TRL's ORPO puts a BOS in front of the prompt that the template did not write (phi-2's "Instruct:"
    template under a tokenizer with a BOS; its ``add_bos_token_if_needed``), shifting the pair one token right; 0
    where the template starts with the BOS (ChatML as SmolLM2 writes it, Llama 3) or the tokenizer has none (Qwen)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return 0
    ids = tokenizer(pair.prompt, add_special_tokens=False)["input_ids"]
    return int(not ids or ids[0] != bos)


def keep_decided(pairs: Sequence[PreferencePair], tokenizer: Any, max_length: int, quarantine: Quarantine, *,
                 orpo: bool = False) -> list[PreferencePair]:
    """The pairs whose chosen and rejected sequences still differ within ``max_length`` tokens.

    TRL's DPO and ORPO keep the start of an over-long sequence (``truncation_mode="keep_start"``; ORPO keeps the
    prompt and cuts the completion, the same cut). A pair whose answers first differ past ``max_length`` (a long
    shared reasoning, a long prompt) then reaches the loss as the same tokens twice: its margin is zero by
    construction and it teaches no preference, only noise in the batch mean. Such pairs go to ``quarantine`` with
    where they differ, so the user sees how far data.max_length falls short. ``orpo``: positions as ORPO's
    sequences have them (:func:`orpo_bos_shift`).
    """
    kept = []
    for p in pairs:
        at = first_difference(p, tokenizer) + (orpo_bos_shift(p, tokenizer) if orpo else 0)
        if at < max_length:
            kept.append(p)
            continue
        quarantine.add(f"{p.kind} pairs", p.id, "rejected",
                       f"identical to chosen within data.max_length ({max_length} tokens; they first differ at token {at}), "
                       "so truncation leaves no preference to learn", json.dumps({"chosen": p.chosen, "rejected": p.rejected}))
    return kept


def on_policy_pairs(model: Any, tokenizer: Any, records: Sequence[Record], fmt: str, system_prompt: str | None, *,
                    rl: Any, samples: int, seed: int, batch_size: int = 16) -> list[PreferencePair]:
    """Sample ``samples`` completions per verifiable record, rank by the GRPO reward; pair best against worst."""
    from ..infer import generate_texts
    from .rewards import total_reward

    rows = grpo_rows(records, tokenizer, fmt, system_prompt)
    texts = generate_texts(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens=rl.max_completion_length,
                           temperature=rl.temperature, num_samples=samples, seed=seed, batch_size=batch_size)
    out = []
    for i, row in enumerate(rows):
        outs = texts[i * samples : (i + 1) * samples]
        ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in outs]
        scores = total_reward(rl.rewards, fmt, rl.max_completion_length, outs, [row["gold"]] * len(outs),
                              [row["options"]] * len(outs), completion_ids=ids)
        best, worst = max(range(len(outs)), key=scores.__getitem__), min(range(len(outs)), key=scores.__getitem__)
        if scores[best] > scores[worst]:
            out.append(PreferencePair(f"{row['id']}:policy", row["prompt"], outs[best], outs[worst], "on_policy"))
    return out
