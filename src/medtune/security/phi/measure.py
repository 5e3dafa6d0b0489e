"""Recall per identifier type and retention per clinical kind of a detector on gold notes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .detector import PhiDetector
from .synthetic import GoldNote
from .types import PhiType, Span

STRUCTURED_RECALL, NAME_RECALL, RETENTION = 0.99, 0.95, 0.99


@dataclass
class PhiScore:
    found: Counter = field(default_factory=Counter)      # identifier fully covered by redaction spans
    typed: Counter = field(default_factory=Counter)      # ... by spans of its own type
    total: Counter = field(default_factory=Counter)
    kept: Counter = field(default_factory=Counter)       # clinical item untouched by any span
    clinical: Counter = field(default_factory=Counter)
    misses: list[tuple[str, str, str]] = field(default_factory=list)   # (note id, type, text) for debugging
    damaged: list[tuple[str, str, str]] = field(default_factory=list)

    def recall(self, t: PhiType) -> float:
        return self.found[t] / self.total[t] if self.total[t] else 1.0

    def retention(self, kind: str) -> float:
        return self.kept[kind] / self.clinical[kind] if self.clinical[kind] else 1.0

    def failures(self) -> list[str]:
        """Each figure under its bar, as a sentence; empty when all bars are met."""
        out = []
        for t in PhiType:
            bar = NAME_RECALL if t is PhiType.NAME else STRUCTURED_RECALL
            if self.total[t] and self.recall(t) < bar:
                out.append(f"{t.value} recall {self.recall(t):.3f} < {bar}")
        for kind in sorted(self.clinical):
            if self.retention(kind) < RETENTION:
                out.append(f"{kind} retention {self.retention(kind):.3f} < {RETENTION}")
        return out


def _covered(start: int, end: int, spans: list[Span], kind: PhiType | None = None) -> bool:
    """Every non-space character of [start, end) lies in a span (of ``kind`` when given)."""
    inside = [(s.start, s.end) for s in spans if kind is None or s.type is kind]
    return all(any(a <= i < b for a, b in inside) for i in range(start, end))


def score(detector: PhiDetector, notes: list[GoldNote]) -> PhiScore:
    sc = PhiScore()
    for note in notes:
        spans = detector.detect(note.text)
        for start, end, t in note.phi:
            sc.total[t] += 1
            if _covered(start, end, spans):
                sc.found[t] += 1
                sc.typed[t] += _covered(start, end, spans, t)
            else:
                sc.misses.append((note.id, t.value, note.text[start:end]))
        for start, end, kind in note.clinical:
            sc.clinical[kind] += 1
            if not any(s.start < end and start < s.end for s in spans):
                sc.kept[kind] += 1
            else:
                sc.damaged.append((note.id, kind, note.text[start:end]))
    return sc


def markdown_table(sc: PhiScore, notes: int) -> str:
    lines = [f"Synthetic set: {notes} notes (`medtune.security.phi.synthetic`, seed 0).", "",
             "| identifier | instances | recall | recall with the right type | bar |", "|---|---:|---:|---:|---:|"]
    for t in PhiType:
        bar = NAME_RECALL if t is PhiType.NAME else STRUCTURED_RECALL
        typed = sc.typed[t] / sc.total[t] if sc.total[t] else 1.0
        lines.append(f"| {t.value} | {sc.total[t]} | {sc.recall(t):.3f} | {typed:.3f} | {bar} |")
    lines += ["", "| clinical content | instances | kept intact | bar |", "|---|---:|---:|---:|"]
    for kind in sorted(sc.clinical):
        lines.append(f"| {kind} | {sc.clinical[kind]} | {sc.retention(kind):.3f} | {RETENTION} |")
    return "\n".join(lines) + "\n"
