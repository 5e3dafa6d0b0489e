"""Registry of known base models, kept as data in ``resources/presets/*.yaml``."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from ..utils.paths import resource_path

ReasoningFormat = Literal["think", "sections", "plain"]


class ArchConfig(BaseModel):
    """The few dimensions the memory estimator needs when the model is not on disk."""

    model_config = ConfigDict(extra="forbid")
    architecture: str  # transformers' model_type (llama, qwen2, qwen3, phi, ...): the layer layout (models.memory.LAYOUTS)
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1] = 1
    name: str
    hf_id: str
    params_b: float = Field(gt=0)
    context_length: int = Field(gt=0)
    reasoning_format: ReasoningFormat
    license: str
    lora_target_modules: list[str]
    target_module_aliases: dict[str, list[str]] = Field(default_factory=dict)
    chat_template: str | None = None
    config: ArchConfig
    embedded: bool = False
    gated: bool = False
    notes: str = ""

    @property
    def architecture(self) -> str:
        return self.config.architecture


def presets_dir():
    return resource_path("presets")


@lru_cache(maxsize=1)
def load_presets() -> dict[str, Preset]:
    """All shipped presets by name.

    >>> "smollm2-135m" in load_presets()
    True
    """
    out = {}
    for path in sorted(presets_dir().glob("*.yaml")):
        preset = Preset.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        if preset.name != path.stem:
            raise ValueError(f"{path}: name {preset.name!r} must equal the file stem {path.stem!r}")
        out[preset.name] = preset
    return out


def get_preset(name: str) -> Preset | None:
    return load_presets().get(name)


def find_preset_by_hf_id(hf_id: str) -> Preset | None:
    for p in load_presets().values():
        if p.hf_id.lower() == hf_id.lower():
            return p
    return None


DEFAULT_PRESET = "smollm2-135m"
