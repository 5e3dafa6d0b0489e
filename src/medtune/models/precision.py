"""Which arithmetic this machine runs: the one place that turns `auto` into a dtype.

"auto" means the fastest arithmetic that keeps results:

* CUDA: bf16 where the GPU supports it, else fp16 (autocast for training, half weights for
  inference; fully tuned weights stay fp32 masters).
* a CPU with native bf16 (x86 AVX512-BF16 or AMX-BF16): bf16 too. There a bf16 matmul runs
  several times faster than fp32 (measured on a Sapphire Rapids-class Xeon, one thread: 1024^3
  at ~1,200 GFLOP/s in bf16 vs ~160 in fp32); without the instructions PyTorch emulates bf16
  and it is *slower* than fp32, so those CPUs stay fp32.
* anything else (other CPUs, Apple MPS): fp32.

Training keeps fp32 master weights and optimizer states (accelerate's bf16 autocast; LoRA
adapters are fp32 parameters) while a frozen LoRA/QLoRA base sits in the compute dtype, as
it would on a GPU. Merge and GGUF conversion never come here: they load fp32 explicitly.
``train.precision`` and ``model.dtype`` override each choice.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names of the native bf16 instructions
DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@functools.lru_cache(maxsize=1)
def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, ...]:
    """The native-bf16 instruction sets this CPU reports (empty where none, or off Linux/x86)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return ()
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
            break  # every core reports the same flags
    return tuple(f for f in BF16_CPU_FLAGS if f in flags)


def cpu_has_native_bf16() -> bool:
    return bool(cpu_bf16_flags())


def _cuda_half() -> str:
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def auto_precision(device: str) -> tuple[str, str]:
    """(precision, why) that `auto` resolves to on ``device`` ("fp32" | "bf16" | "fp16").

    >>> auto_precision("mps")
    ('fp32', 'mps: fp32 (half precision is not validated there)')
    """
    if device.startswith("cuda"):
        half = _cuda_half()
        return half, f"{device}: {half} ({'the GPU supports bf16' if half == 'bf16' else 'the GPU lacks bf16'})"
    if device == "cpu":
        flags = cpu_bf16_flags()
        if flags:
            return "bf16", f"cpu: bf16 (native bf16 instructions: {', '.join(flags)})"
        return "fp32", "cpu: fp32 (no AVX512-BF16/AMX-BF16: bf16 would be emulated and slower)"
    return "fp32", f"{device}: fp32 (half precision is not validated there)"


def inference_dtype(device: str, requested: str = "auto") -> str:
    """torch dtype name for loading a model to run inference (eval, generation, serving)."""
    if requested != "auto":
        return requested
    return DTYPE_NAMES[auto_precision(device)[0]]


@dataclass(frozen=True)
class TrainPrecision:
    """How a training run computes: accelerate's ``mixed_precision`` and the base weights' dtype."""

    device: str
    compute: str  # "fp32" | "bf16" | "fp16": the autocast dtype of matmuls (fp32 = no autocast)
    weights: str  # torch dtype name the base is loaded in (frozen LoRA base; full FT keeps fp32 masters)
    reason: str

    @property
    def mixed_precision(self) -> str:
        """accelerate's ``Accelerator(mixed_precision=...)``."""
        return "no" if self.compute == "fp32" else self.compute

    def to_dict(self) -> dict[str, str]:
        return {**asdict(self), "trainable": "float32", "optimizer_states": "float32"}


def train_precision(device: str, precision: str = "auto", model_dtype: str = "auto", method: str = "lora") -> TrainPrecision:
    """Resolve ``train.precision`` / ``model.dtype`` for a run on ``device``.

    >>> p = train_precision("cpu", "fp32")
    >>> p.mixed_precision, p.weights
    ('no', 'float32')
    >>> train_precision("cpu", "bf16", method="full").weights
    'float32'
    """
    if precision == "auto":
        compute, why = auto_precision(device)
    else:
        compute, why = precision, f"{device}: {precision} (train.precision)"
    if model_dtype != "auto":
        weights = model_dtype
        why += f"; base weights {model_dtype} (model.dtype)"
    elif method == "full" or compute == "fp32":
        weights = "float32"  # trained weights are fp32 masters; autocast computes in half precision
    else:
        weights = DTYPE_NAMES[compute]  # a frozen base needs no fp32 master copy
        why += f"; frozen base in {weights}, adapters and optimizer states fp32"
    return TrainPrecision(device, compute, weights, why)


def describe_machine() -> str:
    """One line for `medtune doctor`: which path this machine takes for training and inference, and why."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    compute, why = auto_precision(device)
    path = "fp32 training and inference" if compute == "fp32" else (
        f"{compute} autocast training (fp32 master weights and optimizer states), {compute} inference")
    cap = torch.backends.cpu.get_cpu_capability()
    return f"{path}; {why}; torch CPU kernels: {cap}; merge and GGUF export stay fp32"
