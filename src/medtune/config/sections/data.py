from typing import Literal

from pydantic import Field

from .base import Section


class DataSection(Section):
    train_files: list[str] = Field(
        default_factory=list, description="Files or folders of medtune records (JSONL) or importable sources."
    )
    val_files: list[str] = Field(default_factory=list, description="Validation records; empty = split from train.")
    format: str = Field("auto", description="Importer name for non-medtune files (`auto` detects it).")
    val_fraction: float = Field(0.05, ge=0.0, lt=1.0, description="Share of train held out for eval loss when val_files is empty.")
    split_seed: int = Field(0, description="Seed of the content-hash split (the same as `medtune data split --seed`).")
    max_records: int | None = Field(None, ge=1, description="Use only the first N records (e.g. MediMind's first 500).")
    system_prompt: str | None = Field(None, description="System prompt added to every rendered conversation.")
    loss_on: Literal["reasoning_answer", "answer_only"] = Field(
        "reasoning_answer", description="Which assistant tokens carry loss: reasoning + final answer, or the final answer only."
    )
    max_length: int = Field(512, ge=16, description="Maximum tokens per rendered sample.")
    truncation: Literal["shorten_reasoning", "drop"] = Field(
        "shorten_reasoning",
        description="Over-long samples: cut the middle of the reasoning (the answer is never cut), or drop them.",
    )
