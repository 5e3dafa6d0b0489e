"""Padding-free packing: many rendered samples share one row, each with its own positions.

Why: with per-batch padding a realistic length mix wastes a third or more of every forward
pass on pad tokens. Packing concatenates samples into rows of ``capacity`` tokens and restarts
``position_ids`` at 0 for each sample; transformers detects the restarts (``attention_mask``
left as None) and builds a block-diagonal causal mask, so samples never attend to each other.

Bins are filled best-fit-decreasing (BFD, as in TRL's ``pack_dataset(strategy="bfd")``) once;
each epoch then visits the packs in a seeded order, so a step's packs are a pure function of
(seed, step) -- which is what makes resume exact.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from typing import Any

from ..data.render import IGNORE_INDEX, RenderedExample


def pack_best_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Group sample indices into bins of at most ``capacity`` tokens, best-fit decreasing.

    >>> pack_best_fit([5, 3, 4, 2, 6], capacity=8)
    [[4, 3], [0, 1], [2]]
    """
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (free space, bin index)
    for i in sorted(range(len(lengths)), key=lambda k: (-lengths[k], k)):
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"sample {i} has {n} tokens, more than the pack capacity {capacity}")
        pos = bisect.bisect_left(free, (n, -1))
        if pos < len(free):
            space, b = free.pop(pos)
            bins[b].append(i)
            if space - n > 0:
                bisect.insort(free, (space - n, b))
        else:
            bins.append([i])
            if capacity - n > 0:
                bisect.insort(free, (capacity - n, len(bins) - 1))
    return bins


def epoch_order(n_packs: int, seed: int, epoch: int) -> list[int]:
    """The order packs are visited in one epoch (deterministic in seed and epoch)."""
    order = list(range(n_packs))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def collate_packed(examples: Sequence[RenderedExample]) -> dict[str, Any]:
    """One padding-free row: concatenated ids/labels, positions restarting per sample.

    >>> from medtune.data.render import RenderedExample
    >>> a = RenderedExample("a", [1, 2, 3], [-100, 2, 3], 2)
    >>> b = RenderedExample("b", [4, 5], [-100, 5], 1)
    >>> batch = collate_packed([a, b])
    >>> batch["input_ids"].tolist(), batch["position_ids"].tolist()
    ([[1, 2, 3, 4, 5]], [[0, 1, 2, 0, 1]])
    >>> batch["labels"].tolist()
    [[-100, 2, 3, -100, 5]]
    """
    import torch

    ids, labels, pos = [], [], []
    for ex in examples:
        ids.extend(ex.input_ids)
        # A sample's first label is always a masked prompt token, so no loss crosses a boundary;
        # we force it anyway in case a caller built examples by hand.
        labels.extend([IGNORE_INDEX] + ex.labels[1:])
        pos.extend(range(len(ex.input_ids)))
    as_row = lambda xs: torch.tensor([xs], dtype=torch.long)  # noqa: E731
    return {"input_ids": as_row(ids), "labels": as_row(labels), "position_ids": as_row(pos)}


def collate_stacked(packs: Sequence[Sequence[RenderedExample]], pad_id: int) -> dict[str, Any]:
    """Several packs as equal-length rows: a shorter row ends in a pad-only segment whose positions
    restart at 0 (so it is a sequence of its own, attended by nothing else) and whose labels are ignored.

    >>> from medtune.data.render import RenderedExample
    >>> a, b = RenderedExample("a", [1, 2, 3], [-100, 2, 3], 2), RenderedExample("b", [4, 5], [-100, 5], 1)
    >>> batch = collate_stacked([[a, b], [b]], pad_id=0)
    >>> batch["input_ids"].tolist(), batch["position_ids"].tolist()
    ([[1, 2, 3, 4, 5], [4, 5, 0, 0, 0]], [[0, 1, 2, 0, 1], [0, 1, 0, 1, 2]])
    >>> batch["labels"].tolist()[1]
    [-100, 5, -100, -100, -100]
    """
    import torch

    rows = [collate_packed(p) for p in packs]
    width = max(r["input_ids"].shape[1] for r in rows)
    out: dict[str, list] = {"input_ids": [], "labels": [], "position_ids": []}
    for r in rows:
        gap = width - r["input_ids"].shape[1]
        fill = {"input_ids": torch.full((1, gap), pad_id), "labels": torch.full((1, gap), IGNORE_INDEX),
                "position_ids": torch.arange(gap)[None]}
        for key in out:
            out[key].append(torch.cat([r[key], fill[key].to(r[key].dtype)], dim=1))
    return {key: torch.cat(v, dim=0) for key, v in out.items()}


def collate_padded(examples: Sequence[RenderedExample], pad_id: int) -> dict[str, Any]:
    """Right-padded batch with an attention mask (the packing=false path).

    >>> from medtune.data.render import RenderedExample
    >>> b = collate_padded([RenderedExample("a", [1, 2, 3], [-100, 2, 3], 2), RenderedExample("b", [4], [4], 1)], 0)
    >>> b["input_ids"].tolist(), b["attention_mask"].tolist()
    ([[1, 2, 3], [4, 0, 0]], [[1, 1, 1], [1, 0, 0]])
    """
    import torch

    width = max(len(ex) for ex in examples)
    pad = lambda xs, v: xs + [v] * (width - len(xs))  # noqa: E731
    return {
        "input_ids": torch.tensor([pad(ex.input_ids, pad_id) for ex in examples]),
        "labels": torch.tensor([pad(ex.labels, IGNORE_INDEX) for ex in examples]),
        "attention_mask": torch.tensor([pad([1] * len(ex), 0) for ex in examples]),
    }


def make_batches(examples: Sequence[RenderedExample], *, packing: bool, batch_size: int, max_length: int) -> list[list[int]]:
    """Forward passes as lists of example indices: packs of at most ``max_length`` tokens, or
    (no packing) length-sorted groups of ``batch_size`` so that padding stays small.

    With packing, one "batch" of ``batch_size`` is ``batch_size`` packs run one after the other
    (see :func:`micro_batches_per_step`): each pack is a single row, so attention costs
    ``max_length**2`` per pack rather than ``(batch_size * max_length)**2`` for one long row, and
    activation memory is that of one row.
    """
    if packing:
        return pack_best_fit([len(e) for e in examples], max_length)
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i]), i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def micro_batches_per_step(*, packing: bool, batch_size: int, grad_accum: int, processes: int) -> int:
    """Forward passes per optimizer step across all processes.

    >>> micro_batches_per_step(packing=True, batch_size=4, grad_accum=2, processes=1)
    8
    >>> micro_batches_per_step(packing=False, batch_size=4, grad_accum=2, processes=2)
    4
    """
    return grad_accum * processes * (batch_size if packing else 1)


def refuse_deepspeed_accumulation(accelerator: Any, micro_batches: int, rows: int) -> None:
    """Refuse DeepSpeed when a step takes more than one forward pass per process.

    medtune accumulates gradients itself (several backward passes, then one optimizer step); under
    DeepSpeed every ``accelerator.backward`` also steps the engine, whose accumulation count is 1 in
    the shipped configs, so each pass would be an optimizer step of its own, silently. Until that
    path is verified on GPUs it is refused, naming what to change.
    """
    from accelerate.utils import DistributedType

    from ..config.load import ConfigError, ConfigProblem

    passes = -(-micro_batches // max(rows, 1))
    if accelerator.distributed_type == DistributedType.DEEPSPEED and passes > 1:
        raise ConfigError([ConfigProblem(
            "train.grad_accum", f"DeepSpeed would take an optimizer step on each of this step's {passes} forward passes "
            "(medtune accumulates gradients itself; DeepSpeed steps on every backward)",
            "use train.grad_accum=1 with a batch that fits one pass per process, or DDP/FSDP (configs/accelerate)")], "train")


def trainable_tokens(examples: Sequence[RenderedExample], batch: Sequence[int]) -> int:
    """Tokens that carry loss in one micro-batch (the first label of each sample never does)."""
    return sum(sum(1 for lab in examples[i].labels[1:] if lab != IGNORE_INDEX) for i in batch)
