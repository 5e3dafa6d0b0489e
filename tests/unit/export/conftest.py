"""Export fixtures: a run folder with a non-trivial LoRA adapter on the tiny model.

Built with PEFT directly (not the trainer) so export tests stand on their own: LoRA on
every linear layer, then lora_B drawn at random (PEFT initializes it to zero, which
would make "merged == base" trivially true).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from export_helpers import build_run, train_tiny_base  # noqa: E402


@pytest.fixture(scope="session")
def trained_base(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model briefly trained, so its greedy choices are not near-ties (see train_tiny_base)."""
    return train_tiny_base(tiny_model_dir, tmp_path_factory.mktemp("trained") / "base")


@pytest.fixture(scope="session")
def tiny_run(trained_base, tmp_path_factory) -> Path:
    return build_run(trained_base, tmp_path_factory.mktemp("run") / "run", b_std=0.05)


@pytest.fixture(scope="session")
def bf16_run(trained_base, tmp_path_factory) -> Path:
    """A run on the trained tiny model published in bf16 (as Llama 3.2 and R1-Distill are), with a small r=16
    adapter: rounding its merge to bf16 is visible (0.016-0.021 sigma here; the F16 tie band is 0.0195)."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    base = tmp_path_factory.mktemp("bf16") / "base"
    AutoModelForCausalLM.from_pretrained(trained_base, dtype=torch.float32).to(torch.bfloat16).save_pretrained(base)
    for f in trained_base.iterdir():
        if f.name != "config.json" and not f.name.endswith(".safetensors"):
            shutil.copy2(f, base / f.name)
    return build_run(base, tmp_path_factory.mktemp("bf16run") / "run", r=16, b_std=3e-3)


@pytest.fixture(scope="session")
def tiny_merged(tiny_run, tmp_path_factory) -> Path:
    from medtune.export import merge_run

    return merge_run(tiny_run, tmp_path_factory.mktemp("merged") / "merged")


@pytest.fixture(scope="session")
def tiny_f16(tiny_merged, tmp_path_factory) -> Path:
    from medtune.export import convert_hf_to_gguf
    from medtune.export.common import read_provenance

    out = tmp_path_factory.mktemp("gguf") / "tiny-f16.gguf"
    convert_hf_to_gguf(tiny_merged, out, "f16", read_provenance(tiny_merged))
    return out


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
