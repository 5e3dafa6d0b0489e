from .load import (
    ConfigError,
    ConfigProblem,
    config_hash,
    config_to_yaml,
    load_config,
    save_resolved,
    semantic_problems,
)
from .schema import RunConfig

__all__ = [
    "ConfigError", "ConfigProblem", "RunConfig", "config_hash", "config_to_yaml",
    "load_config", "save_resolved", "semantic_problems",
]
