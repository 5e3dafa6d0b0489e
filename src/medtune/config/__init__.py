from .load import (
    ConfigError,
    ConfigProblem,
    config_hash,
    config_to_yaml,
    hardware_problems,
    load_config,
    save_resolved,
    semantic_problems,
)
from .schema import STAGE_NAMES, RunConfig

__all__ = [
    "STAGE_NAMES", "ConfigError", "ConfigProblem", "RunConfig", "config_hash", "config_to_yaml", "hardware_problems",
    "load_config", "save_resolved", "semantic_problems",
]
