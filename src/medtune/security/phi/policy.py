"""The server's PHI policy for input text: ``redact`` | ``block`` | ``pass``; and a log filter.

In every mode the identifier types and counts are returned for the audit event (never the text),
and :class:`PhiLogFilter` keeps identifiers out of log lines that might quote input.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .. import SecurityError
from .detector import PhiDetector, default_detector

POLICIES = ("redact", "block", "pass")


class PhiBlocked(SecurityError):
    """Input holds PHI and the policy is ``block``: answer 422 with this message (it names the types)."""

    status = 422

    def __init__(self, counts: dict[str, int]):
        self.counts = dict(counts)  # for the audit event: a refused request still records what it held
        self.types = sorted(counts)
        types = self.types
        super().__init__(f"the input contains protected health information ({', '.join(types)}); this server "
                         "refuses it (security.phi_policy=block): remove the identifiers and send it again")


@dataclass
class PolicyResult:
    text: str                                   # what the model may see
    counts: dict[str, int] = field(default_factory=dict)   # PHI types found -> count, for the audit event


def apply_phi_policy(text: str, policy: str, detector: PhiDetector | None = None) -> PolicyResult:
    """Detect, then redact, refuse (:class:`PhiBlocked`) or pass ``text`` per ``policy``."""
    if policy not in POLICIES:
        raise ValueError(f"phi policy {policy!r}: use one of {', '.join(POLICIES)}")
    red = (detector or default_detector()).redact(text)
    if policy == "block" and red.spans:
        raise PhiBlocked(red.counts)
    return PolicyResult(red.text if policy == "redact" else text, red.counts)


def apply_to_messages(messages: list[dict[str, Any]], policy: str,
                      detector: PhiDetector | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The policy over OpenAI chat messages (string content or text parts); block names every type found."""
    detector = detector or default_detector()
    counts: Counter = Counter()
    out = []
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, str):
            res = apply_phi_policy(content, "pass" if policy == "block" else policy, detector)
            counts.update(res.counts)
            out.append({**msg, "content": res.text})
        elif isinstance(content, list):
            parts = []
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    res = apply_phi_policy(part["text"], "pass" if policy == "block" else policy, detector)
                    counts.update(res.counts)
                    part = {**part, "text": res.text}
                parts.append(part)
            out.append({**msg, "content": parts})
        else:
            out.append(msg)
    if policy == "block" and counts:
        raise PhiBlocked(dict(counts))
    return out, dict(counts)


class PhiLogFilter(logging.Filter):
    """Redacts identifiers in every record passing through (defence in depth: the server logs no text).

    Attach it to handlers (a logger's own filters do not see records propagated from child
    loggers). A traceback is formatted and redacted here too: an exception message may quote input.
    """

    def __init__(self, detector: PhiDetector | None = None):
        super().__init__()
        self.detector = detector or default_detector()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.detector.redact(message).text
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            # Formatter.format uses exc_text when set: the redacted traceback is the only one written
            record.exc_text = self.detector.redact(_TRACEBACK.formatException(record.exc_info)).text
        return True


_TRACEBACK = logging.Formatter()
