"""`auto` precision follows the hardware: native bf16 CPUs and CUDA compute in half precision, others in fp32."""

from __future__ import annotations

import pytest
import torch

from medtune.config import ConfigError, load_config
from medtune.config.load import hardware_problems
from medtune.models import precision
from medtune.models.load import pick_dtype

SPR_FLAGS = "flags\t\t: fpu vme avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8\n"
EPYC_FLAGS = "flags\t\t: fpu vme avx2 avx512f avx512bw avx512_bf16\n"
OLD_FLAGS = "flags\t\t: fpu vme avx2 avx512f avx512bw avx512_vnni\n"
READ_FLAGS = precision.cpu_bf16_flags.__wrapped__  # the uncached reader


@pytest.fixture()
def cpu_flags(monkeypatch, tmp_path):
    """Pretend to run on a CPU whose /proc/cpuinfo holds the given flags line."""

    def use(line: str) -> None:
        info = tmp_path / "cpuinfo"
        info.write_text("processor\t: 0\n" + line + "processor\t: 1\n" + line)
        monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")
        monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: READ_FLAGS(str(info)))

    return use


def test_flags_are_read_from_cpuinfo(cpu_flags):
    cpu_flags(SPR_FLAGS)
    assert precision.cpu_bf16_flags() == ("amx_bf16", "avx512_bf16")
    cpu_flags(EPYC_FLAGS)
    assert precision.cpu_bf16_flags() == ("avx512_bf16",)
    cpu_flags(OLD_FLAGS)
    assert precision.cpu_bf16_flags() == ()
    assert READ_FLAGS("/nonexistent/cpuinfo") == ()


@pytest.mark.parametrize(("line", "expected"), [(SPR_FLAGS, torch.bfloat16), (EPYC_FLAGS, torch.bfloat16),
                                                (OLD_FLAGS, torch.float32)])
def test_auto_inference_dtype_on_cpu(cpu_flags, line, expected):
    cpu_flags(line)
    assert pick_dtype("cpu") == expected
    assert pick_dtype("cpu", "float32") == torch.float32  # asked for: always honoured
    compute, why = precision.auto_precision("cpu")
    assert ("bf16" in why and "native" in why) if expected == torch.bfloat16 else ("emulated" in why and compute == "fp32")


def test_training_plan(cpu_flags):
    cpu_flags(SPR_FLAGS)
    lora = precision.train_precision("cpu")
    assert (lora.mixed_precision, lora.weights) == ("bf16", "bfloat16")  # autocast; frozen base in bf16
    assert lora.to_dict()["trainable"] == lora.to_dict()["optimizer_states"] == "float32"
    full = precision.train_precision("cpu", method="full")
    assert (full.mixed_precision, full.weights) == ("bf16", "float32")  # fp32 masters of trained weights
    asked = precision.train_precision("cpu", "fp32")
    assert (asked.mixed_precision, asked.weights) == ("no", "float32")
    pinned = precision.train_precision("cpu", model_dtype="float32")
    assert (pinned.mixed_precision, pinned.weights) == ("bf16", "float32") and "model.dtype" in pinned.reason
    cpu_flags(OLD_FLAGS)
    old = precision.train_precision("cpu")
    assert (old.mixed_precision, old.weights) == ("no", "float32")


def test_config_refuses_emulated_bf16_and_cpu_fp16():
    cfg = load_config(None, ["train.precision=bf16"])
    assert hardware_problems(cfg, cuda_available=False, cpu_bf16=True) == []
    probs = hardware_problems(cfg, cuda_available=False, cpu_bf16=False)
    assert [p.path for p in probs] == ["train.precision"] and "emulated" in probs[0].message
    assert "auto" in probs[0].fix
    with pytest.raises(ConfigError, match="fp16 mixed precision needs CUDA"):
        load_config(None, ["train.precision=fp16"], check_hardware=True, cuda_available=False)
    assert hardware_problems(load_config(None, []), cuda_available=False, cpu_bf16=False) == []


def test_doctor_states_the_path(cpu_flags, monkeypatch):
    from medtune.doctor import torch_checks

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU path, also on a machine with a GPU
    cpu_flags(SPR_FLAGS)
    line = next(c.detail for c in torch_checks() if c.name == "precision")
    assert "bf16 autocast training" in line and "amx_bf16" in line and "fp32" in line
    cpu_flags(OLD_FLAGS)
    line = next(c.detail for c in torch_checks() if c.name == "precision")
    assert line.startswith("auto = fp32 training and inference")
