"""Settings shared by the second-stage (GRPO, DPO, ORPO) tests: a tiny model trains in seconds with them."""

from __future__ import annotations

from pathlib import Path

from medtune.config import load_config

COMMON = ["data.max_length=192", "train.batch_size=2", "train.lora.r=4", "train.lora.alpha=8", "train.logging_steps=1",
          "train.learning_rate=0.01", "data.contamination=off"]
GRPO = ["train.rl.num_generations=2", "train.rl.max_completion_length=12"]


def cfg_for(base: Path, *overrides: str):
    return load_config(None, [f"model.base={base}", *COMMON, *overrides])
