"""The knowledge base: one YAML file per condition (schema in docs/knowledge-base.md).

Medical knowledge lives in these files, never in code. The schema is in
``kb_schema`` (extra keys forbidden, so a typo is an error). This module holds the
loader for the shipped KB plus user ``--kb-dir`` folders, and the validator: every
problem is collected, each naming ``file:line: field``, and raised once as a
:class:`KBError` (a ``ConfigError``, so the CLI exits 2 with the full list).

>>> root = yaml.compose("id: x\\nvitals:\\n  heart_rate: {mean: 300}\\n")
>>> _line_of(root, ("vitals", "heart_rate", "mean"))
3
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from ..config.load import ConfigError, ConfigProblem
from ..utils.paths import resource_path
from .kb_rules import condition_problems, differential_problems
from .kb_schema import SCHEMA_VERSION, Condition, Differential

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

@dataclass
class KnowledgeBase:
    """Validated conditions by id, the files they came from, and a content version."""

    conditions: dict[str, Condition]
    files: dict[str, Path] = field(default_factory=dict)
    version: str = ""

    def specialties(self) -> list[str]:
        return sorted({c.specialty for c in self.conditions.values()})

    def differential_name(self, diff: Differential) -> str:
        """Display name of a differential (KB condition name or the declared name)."""
        return self.conditions[diff.condition].name if diff.condition else str(diff.name)


class KBError(ConfigError):
    """Every problem found in a knowledge base, each naming file, line and field."""

    def __init__(self, problems: list[ConfigProblem]):
        super().__init__(problems, source="knowledge base")


def shipped_kb_dir() -> Path:
    return resource_path("kb")


def _line_of(node: yaml.Node | None, loc: Iterable[str | int]) -> int | None:
    """1-based line of the YAML node at ``loc`` (deepest node that exists)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == key), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]  # the key's line: where a reader looks
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


class _FileProblems:
    """Collects problems of one file, resolving field paths to YAML line numbers lazily."""

    def __init__(self, path: Path, text: str, out: list[ConfigProblem]):
        self.path, self.text, self.out, self._root = path, text, out, None

    def add(self, loc: tuple, message: str, fix: str = "") -> None:
        if self._root is None:
            try:
                self._root = yaml.compose(self.text, Loader=_Loader) or False
            except yaml.YAMLError:
                self._root = False
        line = _line_of(self._root or None, loc) or 1
        where = ".".join(str(p) for p in loc) or "<file>"
        self.out.append(ConfigProblem(f"{self.path}:{line}: {where}", message, fix))


def kb_files(dirs: Iterable[str | Path]) -> list[Path]:
    """Every ``<specialty>/<id>.yaml`` under the given KB folders, sorted for determinism."""
    out: list[Path] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise KBError([ConfigProblem(str(d), "knowledge-base folder not found", "pass an existing folder")])
        out.extend(sorted(p for p in d.glob("*/*.y*ml") if p.suffix in (".yaml", ".yml")))
    return out


def _parse_file(path: Path, problems: list[ConfigProblem]) -> Condition | None:
    text = path.read_text(encoding="utf-8")
    fp = _FileProblems(path, text, problems)
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problems.append(ConfigProblem(f"{path}:{line}: <yaml>", f"not valid YAML: {getattr(e, 'problem', e)}"))
        return None
    if not isinstance(data, dict):
        fp.add((), "expected a mapping of condition fields")
        return None
    try:
        cond = Condition.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            fp.add(tuple(err["loc"]), err["msg"])
        return None

    for loc, message, fix in condition_problems(cond, path):
        fp.add(loc, message, fix)
    return cond


def load_kb(kb_dirs: Iterable[str | Path] | None = None, include_shipped: bool = True) -> KnowledgeBase:
    """Load and validate the shipped KB plus user folders; raise :class:`KBError` listing every problem.

    A user condition with the id of a shipped one is an error (ids must be unique), so a
    user cannot silently change a shipped condition's gold label.
    """
    dirs = ([shipped_kb_dir()] if include_shipped else []) + [Path(d) for d in (kb_dirs or [])]
    problems: list[ConfigProblem] = []
    conditions: dict[str, Condition] = {}
    files: dict[str, Path] = {}
    digest = hashlib.sha256()
    for path in kb_files(dirs):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
        cond = _parse_file(path, problems)
        if cond is None:
            continue
        if cond.id in conditions:
            _FileProblems(path, path.read_text(encoding="utf-8"), problems).add(
                ("id",), f"duplicate condition id {cond.id!r} (also in {files[cond.id]})", "rename one of them")
            continue
        conditions[cond.id] = cond
        files[cond.id] = path
    if not conditions and not problems:
        problems.append(ConfigProblem(", ".join(map(str, dirs)), "no condition files (<specialty>/<id>.yaml) found"))

    for cid, cond in conditions.items():
        for loc, message, fix in differential_problems(cond, conditions):
            _FileProblems(files[cid], files[cid].read_text(encoding="utf-8"), problems).add(loc, message, fix)
    if problems:
        raise KBError(problems)
    return KnowledgeBase(conditions, files, f"{SCHEMA_VERSION}+{digest.hexdigest()[:12]}")
