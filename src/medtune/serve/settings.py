"""Server settings: the ``serve`` config section plus ``MEDTUNE_``-prefixed environment variables.

``ServeSettings`` inherits every field (default, bounds, help) from
:class:`medtune.config.sections.serve.ServeSection` and adds only where values come from.
Precedence, highest first: explicit values (command-line flags), environment variables
(``MEDTUNE_PORT=9000``; the nested security section with ``__``, e.g.
``MEDTUNE_SECURITY__PHI_POLICY=block``), the config file's ``serve`` section, the defaults. Nested
sections merge field by field: an environment variable for one security field keeps the config
file's other security fields.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..config import ConfigError, ConfigProblem
from ..config.sections.serve import ServeSection


class ServeSettings(BaseSettings, ServeSection):
    """``ServeSection``'s fields, read from init values and the environment (nothing else: no .env files)."""

    model_config = SettingsConfigDict(env_prefix="MEDTUNE_", env_nested_delimiter="__", extra="forbid",
                                      validate_assignment=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings, env_settings)


def load_settings(section: ServeSection | None = None, overrides: dict[str, Any] | None = None) -> ServeSettings:
    """Settings from a config section, the environment and explicit overrides (``None`` values are ignored).

    Raises :class:`medtune.config.ConfigError` naming each bad field and where it came from.
    """
    file_values = section.model_dump(exclude_unset=True) if section is not None else {}
    given = _without_none(overrides or {})
    try:
        env_values = ServeSettings().model_dump(exclude_unset=True)
        return ServeSettings(**_merge(_merge(file_values, env_values), given))
    except ValidationError as e:
        problems = [ConfigProblem("serve." + ".".join(str(p) for p in err["loc"]) if err["loc"] else "serve",
                                  err["msg"], f"check the flag, the config's serve section or {_env_name(err['loc'])}"
                                  if err["loc"] else "check the serve settings")
                    for err in e.errors()]
        raise ConfigError(problems, "serve settings") from None


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _without_none(v) if isinstance(v, dict) else v for k, v in values.items() if v is not None}


def _merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    """``high`` over ``low``, nested dicts merged key by key."""
    out = dict(low)
    for key, value in high.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _env_name(loc: tuple) -> str:
    """MEDTUNE_PORT, MEDTUNE_SECURITY__PHI_POLICY: the variable that sets the field at ``loc``."""
    return "MEDTUNE_" + "__".join(str(p).upper() for p in loc if isinstance(p, str))
