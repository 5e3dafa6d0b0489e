"""A flag's default and help are declared once, in the config Field: the CLI never writes them a second time.

Walks every command of the `medtune` app. A flag built with ``field_option`` must default to None
("as the config says") and carry the Field's description; any other flag must not be named like a
field of the sections its command drives, and no flag's help may copy a Field's description.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path

import typer
from typer.models import OptionInfo

from medtune.cli.main import app
from medtune.cli.options import config_field, field_option, walk_fields
from medtune.config import RunConfig

CLI = Path(__file__).resolve().parents[3] / "src" / "medtune" / "cli"
# Which RunConfig sections each top-level command reads (its flags may not shadow their fields).
SECTIONS = {"synth": ["synth"], "data": ["data"], "train": ["train", "data", "model"], "eval": ["eval"],
            "export": ["export"], "merge": ["export"], "run": [], "quickstart": [], "recommend": ["train"],
            "config": [], "models": [], "doctor": []}


def commands(t: typer.Typer, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    if t.registered_callback is not None:
        yield prefix, t.registered_callback.callback
    for c in t.registered_commands:
        yield prefix + (c.name or c.callback.__name__,), c.callback
    for g in t.registered_groups:
        yield from commands(g.typer_instance, prefix + (g.name,))


DESCRIPTIONS = {info.description for _, info in walk_fields() if info.description and len(info.description) > 20}


def options() -> Iterator[tuple[tuple[str, ...], str, OptionInfo]]:
    for path, fn in commands(app):
        for name, p in inspect.signature(fn).parameters.items():
            if isinstance(p.default, OptionInfo):
                yield path, name, p.default


def test_the_walk_sees_the_stage_commands():
    seen = {path for path, _, _ in options()}
    assert {("synth",), ("data", "import"), ("train",), ("eval", "run"), ("export",), ("merge",), ("run",)} <= seen
    mapped = {opt.config_path for _, _, opt in options() if getattr(opt, "config_path", None)}
    assert {"synth.n", "eval.max_new_tokens", "export.gguf", "data.dedupe", "eval.benchmarks"} <= mapped


def test_field_options_take_default_and_help_from_the_field():
    for path, name, opt in options():
        field_path = getattr(opt, "config_path", None)
        if field_path is None:
            continue
        info = config_field(field_path)
        assert opt.default is None, f"{' '.join(path)} --{name}: default {opt.default!r} written again (the Field says it)"
        assert opt.help.startswith(info.description) and f"({field_path}; default: " in opt.help, (path, name, opt.help)


def test_no_other_flag_restates_a_field():
    for path, name, opt in options():
        if getattr(opt, "config_path", None):
            continue
        # () is the root callback (--version); a command not listed drives the section of its name, if any
        sections = SECTIONS.get(path[0], [path[0]] if path[0] in RunConfig.model_fields else []) if path else []
        shadowed = [f for s in sections for f, _ in walk_fields() if f == f"{s}.{name}"]
        assert not shadowed, f"`medtune {' '.join(path)} --{name}` restates {shadowed}: use field_option({shadowed[0]!r})"
        assert not any(d in (opt.help or "") for d in DESCRIPTIONS), f"{' '.join(path)} --{name}: help copies a Field"


def test_no_field_description_is_written_in_the_cli_sources():
    for source in CLI.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value not in DESCRIPTIONS, f"{source.name}:{node.lineno} writes a Field description again"


def test_config_fields_lists_every_field_with_its_help():
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["config", "fields", "eval"])
    assert r.exit_code == 0 and "eval.max_new_tokens" in r.output and "train." not in r.output


def test_a_field_option_reads_the_field_it_names():
    opt = field_option("eval.max_new_tokens", "--max-new-tokens")
    assert opt.default is None and "Generation budget for cot." in opt.help and "default: 256" in opt.help
