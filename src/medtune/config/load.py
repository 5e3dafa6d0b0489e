"""Load a RunConfig from YAML plus dotted overrides, collecting every problem before failing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..utils.io import atomic_write_text
from .schema import RunConfig


@dataclass
class ConfigProblem:
    path: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" + (f" -> fix: {self.fix}" if self.fix else "")


class ConfigError(ValueError):
    """All problems of one config, raised once."""

    def __init__(self, problems: list[ConfigProblem], source: str = "config"):
        self.problems = problems
        self.source = source
        lines = [f"{source}: {len(problems)} problem(s)"] + [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as YAML (numbers, lists, booleans).

    >>> parse_override("train.lora.r=16")
    (['train', 'lora', 'r'], 16)
    >>> parse_override("train.lora.target_modules=[q_proj,v_proj]")
    (['train', 'lora', 'target_modules'], ['q_proj', 'v_proj'])
    """
    if "=" not in text:
        raise ConfigError([ConfigProblem(text, "override must look like section.field=value", "e.g. train.lora.r=16")], "overrides")
    key, value = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value) if value.strip() else ""


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for k in keys[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]
        node[keys[-1]] = value
    return data


_FIXES = {
    "extra_forbidden": "remove it or check the spelling (`medtune config show` lists the valid fields)",
    "missing": "add this field",
    "literal_error": "use one of the allowed values",
}


def _problems_from(err: ValidationError) -> list[ConfigProblem]:
    out = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        fix = _FIXES.get(e["type"], "")
        if e["type"].startswith(("greater", "less")) or e["type"].endswith("_parsing"):
            fix = fix or f"give a valid value (got {e.get('input')!r})"
        out.append(ConfigProblem(path, e["msg"], fix))
    return out


def semantic_problems(cfg: RunConfig, cuda_available: bool | None = None,
                      cpu_bf16: bool | None = None) -> list[ConfigProblem]:
    """Cross-field checks that pydantic's per-field validation cannot see.

    ``cuda_available`` / ``cpu_bf16`` (native bf16 instructions) default to this machine's.
    """
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if cpu_bf16 is None:
        from ..models.precision import cpu_has_native_bf16

        cpu_bf16 = cpu_has_native_bf16()
    probs: list[ConfigProblem] = []
    wants_4bit = cfg.model.load_in_4bit or cfg.train.method == "qlora"
    if wants_4bit and not cuda_available:
        probs.append(ConfigProblem("train.method" if cfg.train.method == "qlora" else "model.load_in_4bit",
                                   "4-bit (QLoRA) loading needs a CUDA GPU and bitsandbytes; none is available",
                                   "use train.method=lora and model.load_in_4bit=false on CPU"))
    if cfg.train.optimizer == "adamw_8bit" and not cuda_available:
        probs.append(ConfigProblem("train.optimizer", "adamw_8bit needs CUDA + bitsandbytes", "use train.optimizer=adamw or adafactor"))
    if cfg.train.precision == "fp16" and not cuda_available:
        probs.append(ConfigProblem("train.precision", "fp16 mixed precision needs CUDA (a loss scaler on a GPU)",
                                   "use train.precision=auto (bf16 on CPUs with native bf16, else fp32)"))
    if cfg.train.precision == "bf16" and not cuda_available and not cpu_bf16:
        probs.append(ConfigProblem("train.precision", "bf16 on this CPU would be emulated (no AVX512-BF16/AMX-BF16): "
                                   "slower than fp32", "use train.precision=auto (fp32 here) or fp32"))
    if cfg.train.early_stopping_patience and not cfg.train.eval_steps:
        probs.append(ConfigProblem("train.early_stopping_patience", "early stopping needs periodic evaluation", "set train.eval_steps > 0"))
    return probs


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    check_hardware: bool = False,
    cuda_available: bool | None = None,
) -> RunConfig:
    """YAML file (optional) + dotted overrides -> validated RunConfig, or ConfigError with every problem."""
    source = str(path) if path else "config"
    data: dict = {}
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError([ConfigProblem(source, "file not found", "check the path")], source) from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
            raise ConfigError([ConfigProblem(where, f"invalid YAML: {getattr(e, 'problem', e)}", "fix the YAML syntax")], source) from None
        if not isinstance(data, dict):
            raise ConfigError([ConfigProblem("<root>", "top level must be a mapping of sections", "start with e.g. `train:`")], source)
    data = apply_overrides(data, overrides or [])
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_problems_from(e), source) from None
    if check_hardware:
        probs = semantic_problems(cfg, cuda_available)
        if probs:
            raise ConfigError(probs, source)
    return cfg


def config_to_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def config_hash(cfg: RunConfig) -> str:
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_resolved(cfg: RunConfig, run_dir: str | Path) -> Path:
    """Write run_dir/config.yaml with its hash in a header comment."""
    text = f"# medtune resolved config, sha256[:16]={config_hash(cfg)}\n" + config_to_yaml(cfg)
    return atomic_write_text(Path(run_dir) / "config.yaml", text)
