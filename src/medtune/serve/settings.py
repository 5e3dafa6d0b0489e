"""Server settings: the ``serve`` config section plus ``MEDTUNE_``-prefixed environment variables.

``ServeSettings`` inherits every field (default, bounds, help) from
:class:`medtune.config.sections.serve.ServeSection` and adds only where values come from.
Precedence, highest first: explicit values (command-line flags), environment variables
(``MEDTUNE_PORT=9000``; nested sections with ``__``, e.g. ``MEDTUNE_SECURITY__...`` once the
security section is nested), the config file's ``serve`` section, the defaults.
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
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        env_values = ServeSettings().model_dump(exclude_unset=True)
        return ServeSettings(**{**file_values, **env_values, **given})
    except ValidationError as e:
        problems = [ConfigProblem("serve." + ".".join(str(p) for p in err["loc"]) if err["loc"] else "serve",
                                  err["msg"], f"check the flag, the config's serve section or MEDTUNE_{str(err['loc'][0]).upper()}"
                                  if err["loc"] else "check the serve settings")
                    for err in e.errors()]
        raise ConfigError(problems, "serve settings") from None
