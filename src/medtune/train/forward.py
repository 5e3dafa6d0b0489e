"""From a step's packs to forward passes and a summed token loss.

On a CPU each pack is its own forward pass (one row: the peak memory of one row, and the cores
are busy either way). On a GPU one row of a small model leaves the device idle -- medtune's
SFT ran at 0.61x the plain Trainer's tokens/s on an H100 that way (docs/benchmarks.md) -- so
there several packs share one forward:

* flash-attention (``attn_implementation="flash_attention_2"``): the packs are concatenated into
  one row; transformers turns the restarting ``position_ids`` into ``cu_seqlens`` and runs
  varlen attention, so nothing is padded and no sample sees another;
* SDPA (the fallback): the packs are stacked as equal-length rows, a shorter pack padded with a
  pad-only segment (its positions restart too, labels ignored); transformers builds a
  block-diagonal causal mask per row from the restarting positions.

Either way the LM head runs only where loss is taken: a boolean ``logits_to_keep`` mask of shape
(rows, length) makes transformers return logits of shape (loss positions, vocab). With
liger-kernel installed on CUDA not even those exist: its fused linear cross-entropy reads the
LM head's weight and the hidden states chunk by chunk. The objective is the same in every
layout (a sum of token cross-entropies); ``tests/unit/train/test_forward.py`` checks that
stacked, concatenated and per-row passes give the same loss and gradients.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..data.render import RenderedExample
from .packing import collate_packed, collate_padded, collate_stacked

FLASH_ATTENTION = ("flash_attention_2", "flash_attention_3")


@dataclass(frozen=True)
class ForwardPlan:
    """How packs become forward passes: ``rows`` packs per pass, concatenated or stacked."""

    rows: int = 1
    concat: bool = False  # one long row (varlen attention) instead of stacked equal-length rows
    fused_ce: bool = False  # liger-kernel's fused linear cross-entropy (CUDA only)

    def describe(self) -> str:
        layout = "one pack per forward" if self.rows == 1 else (
            f"{self.rows} packs per forward, " + ("concatenated (varlen attention)" if self.concat
                                                  else "stacked rows (block-diagonal SDPA masks)"))
        return layout + ("; Liger fused linear cross-entropy" if self.fused_ce else "")


def liger_available() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def training_attention(device: str) -> str | None:
    """flash-attention 2 on CUDA where the ``flash_attn`` package is installed (varlen packing); else the default."""
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return None


def forward_plan(device: str, attn_implementation: str | None, batch_size: int, packing: bool) -> ForwardPlan:
    """Per-row passes on CPU (and without packing, where a batch is already one padded pass); on CUDA
    ``batch_size`` packs per pass, concatenated under flash-attention, stacked under SDPA.

    >>> forward_plan("cpu", "sdpa", 4, True).rows, forward_plan("cuda", "sdpa", 4, True).rows
    (1, 4)
    >>> forward_plan("cuda", "flash_attention_2", 4, True).concat
    True
    """
    if not packing or not device.startswith("cuda"):
        return ForwardPlan()
    return ForwardPlan(rows=batch_size, concat=attn_implementation in FLASH_ATTENTION, fused_ce=liger_available())


def group_packs(packs: Sequence[int], rows: int) -> list[list[int]]:
    """Consecutive groups of at most ``rows`` packs, one group per forward pass.

    >>> group_packs([5, 1, 4, 2, 3], 2)
    [[5, 1], [4, 2], [3]]
    """
    return [list(packs[i : i + rows]) for i in range(0, len(packs), rows)]


def collate_forward(examples: Sequence[RenderedExample], packs: Sequence[Sequence[int]], plan: ForwardPlan,
                    pad_id: int, packing: bool = True) -> dict[str, Any]:
    """The tensors of one forward pass over ``packs`` (lists of example indices)."""
    if not packing:
        return collate_padded([examples[i] for p in packs for i in p], pad_id)
    if len(packs) == 1 or plan.concat:
        return collate_packed([examples[i] for p in packs for i in p])
    return collate_stacked([[examples[i] for i in p] for p in packs], pad_id)


def loss_sum(model: Any, batch: dict[str, Any], fused_ce: bool = False) -> Any:
    """Summed next-token cross-entropy over the positions that carry loss."""
    import torch.nn.functional as F

    targets = batch["labels"][:, 1:]
    keep = targets != -100
    # Position t predicts token t + 1: keep the hidden state of t where label t + 1 carries loss.
    at = F.pad(keep, (0, 1), value=False)
    kwargs = {"input_ids": batch["input_ids"], "logits_to_keep": at, "use_cache": False}
    if "position_ids" in batch:  # packed rows; use_cache=False matters: with a KV cache transformers
        kwargs["position_ids"] = batch["position_ids"]  # does not look for packed sequences in position_ids
    else:  # a right-padded batch (packing off)
        kwargs["attention_mask"] = batch["attention_mask"]
    if fused_ce:
        head = _output_head(model)
        if head is not None:
            with _head_bypassed(head):
                hidden = model(**kwargs).logits  # (loss positions, hidden): the head returned its input
            return _liger_loss_sum(head.weight, hidden, targets[keep])
    logits = model(**kwargs).logits  # (loss positions, vocab)
    return F.cross_entropy(logits.float(), targets[keep], reduction="sum")


def _output_head(model: Any) -> Any:
    """The plain ``nn.Linear`` LM head under any DDP/PEFT wrapping, or None (e.g. a LoRA-adapted head)."""
    import torch
    from accelerate.utils import extract_model_from_parallel

    head = extract_model_from_parallel(model).get_output_embeddings()
    return head if type(head) is torch.nn.Linear and head.bias is None else None


@contextmanager
def _head_bypassed(head: Any):
    """Let the LM head return its input, so the model's output is the hidden states at the kept positions."""
    head.forward = lambda hidden: hidden
    try:
        yield
    finally:
        del head.forward


def _liger_loss_sum(weight: Any, hidden: Any, targets: Any) -> Any:
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    out = LigerFusedLinearCrossEntropyLoss(reduction="sum")(weight, hidden, targets)
    return out[0] if isinstance(out, tuple) else out
