"""``PhiDetector``: structured recognizers + names (+ Presidio when installed) -> merged spans -> redaction."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from .names import find_names
from .patterns import Hit, StructuredRecognizer
from .types import PhiType, Span


@dataclass(frozen=True)
class Redaction:
    text: str
    spans: list[Span] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(s.type.value for s in self.spans))


def merge_hits(hits: list[Hit]) -> list[Span]:
    """Overlapping hits become one span (their union) typed by the most confident hit."""
    spans: list[Span] = []
    cluster: list[Hit] = []
    end = -1
    for h in sorted(hits, key=lambda h: (h.start, -h.end)):
        if cluster and h.start >= end:
            best = max(cluster, key=lambda c: (c.priority, c.end - c.start))
            spans.append(Span(cluster[0].start, end, best.type))
            cluster = []
        cluster.append(h)
        end = max(end, h.end) if len(cluster) > 1 else h.end
    if cluster:
        best = max(cluster, key=lambda c: (c.priority, c.end - c.start))
        spans.append(Span(cluster[0].start, end, best.type))
    return spans


class PhiDetector:
    """Finds Safe Harbor identifiers in text; offline, deterministic, thread-safe once built."""

    def __init__(self, use_presidio: bool = True):
        self.structured = StructuredRecognizer.default()
        self.terms = self.structured.terms
        # one alternation, longest phrase first, so the text is scanned once
        alternation = "|".join(re.escape(p) for p in self.terms.condition_phrases) or "(?!)"
        self._phrases = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)
        self.presidio = None
        if use_presidio:
            from .presidio import presidio_recognizer

            self.presidio = presidio_recognizer()

    def _protected(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in self._phrases.finditer(text)]

    def detect(self, text: str) -> list[Span]:
        hits = list(self.structured.find(text))
        hits += find_names(text, self.terms, self._protected(text))
        if self.presidio is not None:
            hits += self.presidio(text)
        return merge_hits(hits)

    def redact(self, text: str) -> Redaction:
        spans = self.detect(text)
        out, pos = [], 0
        for s in spans:
            out += [text[pos:s.start], f"[{s.type.value}]"]
            pos = s.end
        out.append(text[pos:])
        return Redaction("".join(out), spans)


@lru_cache(maxsize=2)
def default_detector(use_presidio: bool = True) -> PhiDetector:
    return PhiDetector(use_presidio)


def phi_types(spans: list[Span]) -> list[PhiType]:
    return sorted({s.type for s in spans}, key=lambda t: t.value)
