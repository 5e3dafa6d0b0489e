"""What every stage command shares: `-c CONFIG`, dotted overrides, and flags derived from config fields.

A flag that sets a config field is declared with ``field_option("eval.max_new_tokens")``: its help
text and the default it shows come from that Field (declared once, in ``config/sections/``), and
its own default is None, meaning "as the config says". ``command_config`` then builds the
RunConfig: the YAML file, then the flags that were given, then the dotted overrides
(``train.lora.r=8``, the one override syntax, parsed by ``config.load.parse_override``).
"""

from __future__ import annotations

import inspect
import os
import re
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ..config.schema import RunConfig

OVERRIDE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*=")
HYPHENATED_OVERRIDE = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+=")  # a dotted key with a `-` in it
OVERRIDES_HELP = "Dotted config overrides KEY=VALUE, e.g. train.max_steps=4 train.lora.r=8 (values are YAML)."
CONFIG_HELP = "Run config YAML (see configs/), or the name of a packaged recipe such as `quickstart`."


def config_option() -> Any:
    return typer.Option(None, "-c", "--config", help=CONFIG_HELP)


def config_field(path: str) -> FieldInfo:
    """The pydantic Field at a dotted path of RunConfig (list items: ``data.sources.format``)."""
    fields = dict(walk_fields())
    if path not in fields:
        raise KeyError(f"no config field {path!r}")
    return fields[path]


def walk_fields(model: type[BaseModel] = RunConfig, prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """(dotted path, Field) of every field of RunConfig, sections and list items included (``data.sources.path``)."""
    for name, info in model.model_fields.items():
        yield f"{prefix}{name}", info
        sub = _model_in(info.annotation)
        if sub is not None:
            yield from walk_fields(sub, f"{prefix}{name}.")


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside ``X``, ``list[X]`` or ``X | None``, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def field_default(info: FieldInfo) -> Any:
    return info.default_factory() if info.default_factory is not None else info.default


def field_help(path: str, hint: str = "") -> str:
    info = config_field(path)
    default = field_default(info)
    shown = ",".join(map(str, default)) if isinstance(default, list) else default
    # Parentheses, not brackets: typer renders help with rich markup, which would eat "[...]".
    return f"{info.description}{hint} ({path}; default: {'none' if shown in (None, '', {}) else shown})"


def or_default(value: Any, path: str) -> Any:
    """A field option's value, or the Field's default when the flag was not given."""
    return field_default(config_field(path)) if value is None else value


def field_option(path: str, *decls: str, apply: bool = True, hint: str = "", **kwargs: Any) -> Any:
    """A typer option for the config field at ``path``: help and shown default from the Field, value None unless given.

    ``apply=False`` for flags that describe a field but that the command applies itself
    (e.g. `data import --format` sets the format of the files named on the command line);
    ``hint`` adds how the flag spells a value (" Repeat as KEY=VALUE.").
    """
    option = typer.Option(None, *decls, help=field_help(path, hint), show_default=False, **kwargs)
    option.config_path, option.config_apply = path, apply  # read by command_config and the CLI test
    return option


def _cli_type(annotation: Any) -> Any:
    """The typer parameter type for a Field annotation: lists of names, scalars; Literals and unions read as their base."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _cli_type(args[0])
    if origin is list:
        return list[str]
    if origin is typing.Literal:
        return type(args[0])
    if args and origin is not None:  # X | None
        return _cli_type(next(a for a in args if a is not type(None)))
    return annotation if annotation in (int, float, str, bool) else str


def with_field_options(*specs: str | tuple[str, ...], hints: dict[str, str] | None = None) -> Callable:
    """Decorator: one typer option per config field (``field_option``), its type from the Field's annotation.

    A spec is a dotted path (flag ``--last-segment``) or ``(path, *flags)``; the parameter is named
    after the first long flag. The command takes them as ``**flags`` and passes them to
    ``command_config``.
    """
    def wrap(command: Callable) -> Callable:
        sig = inspect.signature(command, eval_str=True)
        params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        for spec in specs:
            path, *decls = (spec,) if isinstance(spec, str) else spec
            decls = decls or [f"--{path.rsplit('.', 1)[-1].replace('_', '-')}"]
            name = decls[0].lstrip("-").replace("-", "_")
            kind = _cli_type(config_field(path).annotation)
            if kind is bool:
                decls = [f"{decls[0]}/--no-{decls[0][2:]}", *decls[1:]]
            option = field_option(path, *decls, hint=(hints or {}).get(path, ""))
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind))
        command.__signature__ = sig.replace(parameters=params)
        return command
    return wrap


def field_options(command: Callable) -> dict[str, Any]:
    """{parameter name: OptionInfo} of a command's field options."""
    return {name: p.default for name, p in inspect.signature(command).parameters.items()
            if getattr(p.default, "config_path", None)}


def split_args(args: list[str] | None) -> tuple[list[str], list[str]]:
    """Positional arguments -> (paths/names, dotted overrides): ``KEY.PATH=VALUE`` items are overrides.

    >>> split_args(["runs/x/train", "eval.limit=5", "data/a=b.jsonl"])
    (['runs/x/train', 'data/a=b.jsonl'], ['eval.limit=5'])
    """
    plain = [a for a in args or [] if not OVERRIDE.match(a)]
    for a in plain:  # `eval.max-new-tokens=5` would otherwise be read as a model or file name
        if HYPHENATED_OVERRIDE.match(a) and not Path(a).exists():
            key, _, value = a.partition("=")
            from ..config.load import ConfigError, ConfigProblem

            raise ConfigError([ConfigProblem(a, "looks like an override, but config fields are spelled with `_`",
                                             f"{key.replace('-', '_')}={value}")], "overrides")
    return plain, [a for a in args or [] if OVERRIDE.match(a)]


def command_config(command: Callable, config: Path | None, overrides: list[str], params: dict[str, Any], *,
                   check_hardware: bool = False) -> RunConfig:
    """RunConfig for one command: ``config`` YAML, the command's field options that were given (``params``
    is the command's ``locals()``), then ``overrides``; ``eval.data_root`` falls back to $MEDTUNE_DATA_ROOT."""
    from ..config import load_config

    values = {opt.config_path: _plain(params[name]) for name, opt in field_options(command).items()
              if opt.config_apply and params.get(name) not in (None, [], ())}
    cfg = load_config(config, overrides, values=values, check_hardware=check_hardware)
    return with_env_data_root(cfg)


def _plain(value: Any) -> Any:
    """Path -> str, tuple -> list: what a YAML file would have given."""
    if isinstance(value, Path):
        return str(value)
    return [_plain(v) for v in value] if isinstance(value, list | tuple) else value


def env_data_root() -> str | None:
    """$MEDTUNE_DATA_ROOT: the CLI is the one place that reads it (stages see only their section)."""
    return os.environ.get("MEDTUNE_DATA_ROOT") or None


def with_env_data_root(cfg: RunConfig) -> RunConfig:
    """``eval.data_root`` from $MEDTUNE_DATA_ROOT when the config leaves it unset."""
    env = env_data_root()
    if cfg.eval.data_root or not env:
        return cfg
    return cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"data_root": env})})
