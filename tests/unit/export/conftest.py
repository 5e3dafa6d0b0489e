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
