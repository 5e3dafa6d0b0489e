"""CPU training speed-ups that keep PEFT's LoRA semantics.

Once bf16 makes a CPU's matmuls cheap (AMX/AVX512-BF16: ~6x fp32), a LoRA step of a small
model is dominated by elementwise work, and LoRA dropout was the largest single part of it:
``nn.Dropout`` draws one random number per element, on the inputs of seven projections per
layer, ~19% of a SmolLM2-135M step (docs/benchmarks.md). Here:

* LoRA dropout becomes :class:`WordDropout`: the keep mask is cut from 64-bit random words, four
  16-bit draws per word, a quarter of the generator's work. The drop probability is ``p``
  rounded to a multiple of 2**-16 (0.05 -> 0.049988), the scale is 1 / (1 - that); the words
  come from torch's seeded generator, so runs stay reproducible.
* under bf16 autocast the LoRA input is no longer cast to the adapters' fp32 dtype first:
  autocast runs the adapter matmuls in bf16 anyway, so that cast (and its backward) only copied.

Only used on a CPU (on CUDA, Bernoulli sampling is fast and autocast casts are cheap).
"""

from __future__ import annotations

from typing import Any

import torch

WORD_BITS = 16


class WordDropout(torch.nn.Module):
    """Inverted dropout with a mask of 16-bit random draws (see the module docstring)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.cut = round(p * 2**WORD_BITS)  # dropped: draws among the lowest ``cut`` of 65536 values
        self.scale = 1.0 / (1.0 - self.cut / 2**WORD_BITS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.cut == 0:
            return x
        n = x.numel()
        words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
        keep = words.view(torch.int16)[:n].view(x.shape) >= self.cut - 2 ** (WORD_BITS - 1)
        # where() keeps only the boolean mask for backward (1 byte per element, as nn.Dropout does)
        return torch.where(keep, x * self.scale, 0.0)

    def extra_repr(self) -> str:
        return f"p={self.p}, effective p={self.cut / 2**WORD_BITS:.6f}"


def tune_lora_for_cpu(model: Any, compute: str) -> int:
    """Swap LoRA dropouts for :class:`WordDropout` and, under half-precision autocast, stop PEFT's
    fp32 input cast; returns the number of LoRA layers changed."""
    layers = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        layers += 1
        for name, drop in list(dropouts.items()):
            if isinstance(drop, torch.nn.Dropout) and drop.p > 0:
                dropouts[name] = WordDropout(drop.p).train(drop.training)
        if compute != "fp32":
            module.cast_input_dtype_enabled = False
    return layers
