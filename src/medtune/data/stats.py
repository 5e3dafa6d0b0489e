"""Data set statistics: counts, token-length percentiles of the rendered samples, a histogram.

Token lengths are measured on exactly what training sees: the record rendered through
``render.build_messages`` and the tokenizer's chat template, so ``data.max_length`` can be
chosen from the percentiles instead of guessed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .records import Record
from .render import build_messages

PERCENTILES = (50, 90, 95, 99)


def count_fields(records: Iterable[Record]) -> tuple[dict[str, Any], list[Record]]:
    """Counts by source, task, subject; share with reasoning/context. Returns (counts, records)."""
    kept: list[Record] = []
    by = {"source": Counter(), "task": Counter(), "subject": Counter()}
    with_reasoning = with_context = with_options = 0
    for r in records:
        kept.append(r)
        by["source"][r.source] += 1
        by["task"][r.task] += 1
        by["subject"][str(r.metadata.get("subject") or r.metadata.get("specialty") or "-")] += 1
        with_reasoning += bool(r.reasoning)
        with_context += bool(r.context)
        with_options += bool(r.options)
    counts = {"records": len(kept), "with_reasoning": with_reasoning, "with_context": with_context,
              "multiple_choice": with_options, **{f"by_{k}": dict(v.most_common()) for k, v in by.items()}}
    return counts, kept


def token_lengths(records: list[Record], tokenizer: Any, fmt: str, system_prompt: str | None = None,
                  batch_size: int = 256) -> np.ndarray:
    """Tokens per rendered training sample (chat template + reasoning format + answer)."""
    lengths: list[int] = []
    for start in range(0, len(records), batch_size):
        texts = [tokenizer.apply_chat_template(build_messages(r, fmt, system_prompt, with_answer=True), tokenize=False)
                 for r in records[start:start + batch_size]]
        lengths.extend(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return np.asarray(lengths, dtype=np.int64)


def length_summary(lengths: np.ndarray, max_length: int | None = None) -> dict[str, Any]:
    """Percentiles, mean, max, and how many samples exceed ``max_length``.

    >>> length_summary(np.arange(1, 101), max_length=90)["over_max_length"]
    10
    """
    if lengths.size == 0:
        return {"count": 0}
    out: dict[str, Any] = {f"p{p}": int(np.percentile(lengths, p)) for p in PERCENTILES}
    out.update(count=int(lengths.size), mean=round(float(lengths.mean()), 1), min=int(lengths.min()), max=int(lengths.max()))
    if max_length is not None:
        out["max_length"] = max_length
        out["over_max_length"] = int((lengths > max_length).sum())
    return out


def plot_histogram(lengths: np.ndarray, path: str | Path, title: str, max_length: int | None = None) -> Path:
    """Token-length histogram PNG (written atomically) with the percentiles and max_length marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..utils.io import atomic_open

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.hist(lengths, bins=min(60, max(10, int(np.sqrt(max(lengths.size, 1))))), color="#4c72b0")
    for p, style in zip((50, 95), (":", "--")):
        v = np.percentile(lengths, p)
        ax.axvline(v, color="black", linestyle=style, label=f"p{p} = {int(v)}")
    if max_length is not None:
        ax.axvline(max_length, color="red", label=f"max_length = {max_length}")
    ax.set(xlabel="tokens per rendered sample", ylabel="samples", title=title)
    ax.legend()
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
    return Path(path)
