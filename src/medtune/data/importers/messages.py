"""Chat transcripts: ShareGPT (``conversations`` of ``from``/``value``) and OpenAI (``messages`` of ``role``/``content``).

Only single-exchange conversations become records (one user question, one assistant answer,
an optional system prompt kept in metadata); a multi-turn chat is quarantined rather than
silently flattened. The assistant's reasoning comes from ``reasoning_content`` when present,
else from ``<think>``/``## Thinking`` markers in its text.
"""

from __future__ import annotations

from typing import Any

from ..quality import RecordError, check_text
from ..records import Answer, Record
from ..render import split_reasoning
from ._fields import build_record, require_dict
from .base import ImportContext, Importer, RawRow

ROLE_ALIASES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                "bot": "assistant", "model": "assistant", "system": "system"}


def parse_turns(turns: Any, field: str, ctx: ImportContext) -> dict[str, str | None]:
    """Validate a single exchange and return its system, user, assistant and reasoning texts."""
    if not isinstance(turns, list) or not turns:
        raise RecordError(field, "expected a non-empty list of turns")
    out: dict[str, str | None] = {"system": None, "user": None, "assistant": None, "reasoning": None}
    for i, turn in enumerate(turns):
        where = f"{field}[{i}]"
        if not isinstance(turn, dict):
            raise RecordError(where, f"expected an object, got {type(turn).__name__}")
        raw_role = turn.get("role", turn.get("from"))
        role = ROLE_ALIASES.get(str(raw_role).lower()) if raw_role is not None else None
        if role is None:
            raise RecordError(where, f"unknown role (expected system, user/human or assistant/gpt): {raw_role!r}")
        content = check_text(where, turn.get("content", turn.get("value")), required=True, max_chars=ctx.max_chars)
        if out[role] is not None:
            raise RecordError(field, f"multi-turn conversations are not supported (second {role} turn at {i})")
        out[role] = content
        if role == "assistant" and turn.get("reasoning_content") is not None:
            out["reasoning"] = check_text(f"{where}.reasoning_content", turn["reasoning_content"], required=False,
                                          max_chars=ctx.max_chars)
    for role in ("user", "assistant"):
        if out[role] is None:
            raise RecordError(field, f"no {role} turn")
    return out


def conversation_record(turns: dict[str, str | None], source: str, data: dict[str, Any]) -> Record:
    reasoning, final = turns["reasoning"], turns["assistant"] or ""
    if reasoning is None:
        reasoning, final = split_reasoning(final)
    if not final:
        raise RecordError("assistant", "empty final answer after the reasoning")
    metadata = {"system_prompt": turns["system"]} if turns["system"] else {}
    return build_record(
        id=str(data["id"]) if data.get("id") else None, source=source, task="open", question=turns["user"],
        answer=Answer(text=final), reasoning=reasoning or None, response=final, metadata=metadata,
    )


class MessagesImporter(Importer):
    name = "messages"
    description = "Chat: OpenAI messages [{role, content, reasoning_content?}] or ShareGPT conversations [{from, value}]"

    def matches(self, row: Any) -> bool:
        if not isinstance(row, dict):
            return False
        turns = row.get("messages", row.get("conversations"))
        return isinstance(turns, list) and bool(turns) and isinstance(turns[0], dict)

    def convert(self, row: RawRow, ctx: ImportContext) -> Record:
        data = require_dict(row.data, ctx)
        field = "messages" if "messages" in data else "conversations"
        return conversation_record(parse_turns(data.get(field), field, ctx), self.name, data)
