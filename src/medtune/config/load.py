"""Load a RunConfig from YAML plus dotted overrides, collecting every problem before failing."""

from __future__ import annotations

import hashlib
import json
import re
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
        where = f"{self.path}: " if self.path else ""  # empty path: the whole file
        return where + self.message + (f" -> fix: {self.fix}" if self.fix else "")


class ConfigError(ValueError):
    """All problems of one config, raised once."""

    def __init__(self, problems: list[ConfigProblem], source: str = "config"):
        self.problems = problems
        self.source = source
        if len(problems) == 1:  # one problem: one line, e.g. "configs: is a folder, not a YAML file -> fix: ..."
            super().__init__(f"{source}: {problems[0]}")
            return
        lines = [f"{source}: {len(problems)} problems"] + [f"  - {p}" for p in problems]
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
    keys = key.strip().split(".")
    if not all(k.strip() for k in keys):
        raise ConfigError([ConfigProblem(text, f"{key.strip()!r} is not a dotted field path (an empty part)",
                                         "e.g. train.lora.r=16")], "overrides")
    try:
        return keys, yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as e:  # the value is read as YAML: `train.lora.r=[1` is a syntax error of the override
        raise ConfigError([ConfigProblem(text, f"the value is not valid YAML ({getattr(e, 'problem', None) or e})",
                                         "quote it, or close the list/mapping, e.g. train.lora.target_modules=[q_proj,v_proj]")],
                          "overrides") from None


def set_dotted(data: dict, keys: list[str], value: Any) -> None:
    """``data[k0][k1]...[kn] = value``, creating the mappings on the way."""
    node = data
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[keys[-1]] = value


def apply_overrides(data: dict, overrides: list[str], values: dict[str, Any] | None = None) -> dict:
    """Apply typed ``values`` ({"eval.limit": 5}, from CLI flags), then ``a.b=c`` overrides."""
    for path, value in (values or {}).items():
        set_dotted(data, path.split("."), value)
    for item in overrides:
        set_dotted(data, *parse_override(item))
    return data


_FIXES = {
    "extra_forbidden": "remove it or check the spelling (`medtune config show` lists the valid fields)",
    "missing": "add this field",
    "literal_error": "use one of the allowed values",
}


_UNION_BRANCH = re.compile(r"^(str|int|float|bool|none|[a-z-]+\[.*\])$")  # pydantic's loc tag of one member of a union


def _problems_from(err: ValidationError) -> list[ConfigProblem]:
    """One problem per field: the errors pydantic gives per member of a union (``x.str``, ``x.int``, ...) become one,
    naming what the field accepts."""
    out: list[ConfigProblem] = []
    unions: dict[str, tuple[ConfigProblem, list[str]]] = {}
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        if len(loc) > 1 and _UNION_BRANCH.match(loc[-1]):
            path = ".".join(loc[:-1])
            if path not in unions:
                unions[path] = (ConfigProblem(path, f"got {e.get('input')!r}", "give a value of one of these types"), [])
                out.append(unions[path][0])
            unions[path][1].append(_accepts(loc[-1], e))
            continue
        path = ".".join(loc) or "<root>"
        fix = _FIXES.get(e["type"], "")
        if e["type"].startswith(("greater", "less")) or e["type"].endswith("_parsing"):
            fix = fix or f"give a valid value (got {e.get('input')!r})"
        out.append(ConfigProblem(path, e["msg"].removeprefix("Value error, "), fix))
    for problem, accepted in unions.values():
        problem.message += "; expected " + (", ".join(accepted[:-1]) + " or " + accepted[-1] if len(accepted) > 1 else accepted[0])
    return out


def _accepts(branch: str, error: dict[str, Any]) -> str:
    """What one union member accepts, in words: a literal's values, else the type's name."""
    expected = (error.get("ctx") or {}).get("expected")
    return expected if branch.startswith("literal[") and expected else branch


def semantic_problems(cfg: RunConfig) -> list[ConfigProblem]:
    """Checks pydantic's per-field validation cannot see: fields that contradict each other, an unknown base.

    They hold on any machine, so `load_config` always runs them (hardware: ``hardware_problems``).
    """
    probs: list[ConfigProblem] = []
    if cfg.train.early_stopping_patience and not cfg.train.eval_steps:
        probs.append(ConfigProblem("train.early_stopping_patience", "early stopping needs periodic evaluation", "set train.eval_steps > 0"))
    if cfg.data.sources and cfg.data.train_files:
        probs.append(ConfigProblem("data.train_files", "both data.sources and data.train_files are set",
                                   "keep data.sources (imported by the data stage) or data.train_files (read as they are), not both"))
    if cfg.synth.style == "demo":
        extra = sorted(set(cfg.synth.tasks) - {"diagnosis", "mcq"})
        if extra:
            probs.append(ConfigProblem("synth.tasks", f"the demo style writes diagnosis and mcq records only, not {extra}",
                                       "use synth.tasks=[diagnosis,mcq] or synth.style=cases"))
        if cfg.synth.teacher.url or cfg.synth.kb_dir or cfg.synth.bias_variants:
            probs.append(ConfigProblem("synth.style", "the demo style uses the shipped knowledge base only (no teacher, "
                                       "kb_dir or bias_variants)", "use synth.style=cases for those"))
        if cfg.synth.compact:  # demo records state a few key findings: there is no vignette to shorten
            probs.append(ConfigProblem("synth.compact", "synth.style: demo writes its own short records (each case's key "
                                       "findings), so synth.compact, which shortens the cases style's vignettes, would "
                                       "change nothing", "drop synth.compact, or use synth.style=cases"))
    e = cfg.eval
    if e.backend == "openai" and not e.endpoint:
        probs.append(ConfigProblem("eval.endpoint", "the openai backend needs an endpoint", "set eval.endpoint=http://HOST:PORT/v1"))
    if e.compare_base and (e.backend != "transformers" or e.num_samples > 1 or e.temperature > 0 or e.permutations):
        probs.append(ConfigProblem("eval.compare_base", "the base-vs-tuned comparison decodes greedily on the transformers "
                                   "backend, one sample, no permutations", "drop eval.compare_base or those eval settings"))
    probs.extend(_model_base_problems(cfg.model.base, cfg.model.revision))
    return probs


def _model_base_problems(base: str, revision: str | None = None) -> list[ConfigProblem]:
    from ..models.source import ModelLoadError, resolve_source, revision_problem

    try:
        source = resolve_source(base)
    except ModelLoadError as e:
        return [ConfigProblem("model.base", str(e), "pick a name from `medtune models list`, an HF id owner/name, a folder or a .gguf")]
    problem = revision_problem(source, revision)
    return [ConfigProblem("model.revision", problem, "a revision pins a Hub id (owner/name) only")] if problem else []


def hardware_problems(cfg: RunConfig, cuda_available: bool | None = None,
                      cpu_bf16: bool | None = None) -> list[ConfigProblem]:
    """Settings this machine cannot run (4-bit, 8-bit Adam, fp16 without CUDA, bf16 without native bf16).

    ``cuda_available`` / ``cpu_bf16`` (native bf16 instructions) default to this machine's.
    """
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if cuda_available:
        return []
    if cpu_bf16 is None:
        from ..models.precision import cpu_has_native_bf16

        cpu_bf16 = cpu_has_native_bf16()
    probs: list[ConfigProblem] = []
    wants_4bit = cfg.model.load_in_4bit or cfg.train.method == "qlora"
    if wants_4bit:
        probs.append(ConfigProblem("train.method" if cfg.train.method == "qlora" else "model.load_in_4bit",
                                   "4-bit (QLoRA) loading needs a CUDA GPU and bitsandbytes; none is available",
                                   "use train.method=lora and model.load_in_4bit=false on CPU"))
    if cfg.train.optimizer == "adamw_8bit":
        probs.append(ConfigProblem("train.optimizer", "adamw_8bit needs CUDA + bitsandbytes", "use train.optimizer=adamw or adafactor"))
    if cfg.train.stage == "grpo" and cfg.train.rl.use_vllm:
        probs.append(ConfigProblem("train.rl.use_vllm", "vLLM generation needs a CUDA GPU", "set train.rl.use_vllm=false on CPU"))
    if cfg.train.precision == "fp16" and not cuda_available:
        probs.append(ConfigProblem("train.precision", "fp16 mixed precision needs CUDA (a loss scaler on a GPU)",
                                   "use train.precision=auto (bf16 on CPUs with native bf16, else fp32)"))
    if cfg.train.precision == "bf16" and not cuda_available and not cpu_bf16:
        probs.append(ConfigProblem("train.precision", "bf16 on this CPU would be emulated (no AVX512-BF16/AMX-BF16): "
                                   "slower than fp32", "use train.precision=auto (fp32 here) or fp32"))
    return probs


RECIPE_SUFFIX = ".yaml"


def resolve_config_path(spec: str | Path) -> Path:
    """A config file path, or the name of a recipe shipped in the package (``quickstart``).

    >>> resolve_config_path("quickstart").name
    'quickstart.yaml'
    """
    path = Path(spec)
    if path.exists() or path.suffix in (".yaml", ".yml") or "/" in str(spec):
        return path
    from ..utils.paths import resource_path

    packaged = resource_path("recipes", f"{spec}{RECIPE_SUFFIX}")
    return packaged if packaged.is_file() else path


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: plain YAML keeps the last value silently, so a
    second `train:` block would drop every field of the first without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may repeat keys on purpose
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"duplicate key {key!r} (first on line {seen[key].start_mark.line + 1}): the second would silently "
                    "replace the first", key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def read_yaml_mapping(path: Path, source: str) -> dict:
    """The top-level mapping of a YAML config; a folder, binary or malformed file is a one-problem ConfigError."""
    if path.is_dir():
        raise ConfigError([ConfigProblem("", "is a folder, not a YAML config file", "give the path of a .yaml file")], source)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("", "file not found", "check the path")], source) from None
    except OSError as e:
        raise ConfigError([ConfigProblem("", f"cannot be read ({e.strerror})", "check the path and its permissions")], source) from None
    try:
        if b"\0" in raw:
            raise UnicodeDecodeError("utf-8", raw, raw.index(b"\0"), raw.index(b"\0") + 1, "NUL byte")
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([ConfigProblem("", f"not a text file (binary or not UTF-8 at byte {e.start})",
                                         "give a YAML config, e.g. configs/quickstart.yaml")], source) from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = str(getattr(e, "problem", e))
        fix = "keep one of them (merge their fields)" if problem.startswith("duplicate key") else "fix the YAML syntax"
        raise ConfigError([ConfigProblem(where, f"invalid YAML: {problem}", fix)], source) from None
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem("<root>", "top level must be a mapping of sections", "start with e.g. `train:`")], source)
    return data


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    values: dict[str, Any] | None = None,
    check_hardware: bool = False,
    cuda_available: bool | None = None,
) -> RunConfig:
    """YAML file or packaged recipe name (optional) + typed ``values`` + dotted overrides -> validated RunConfig.

    Every problem (schema, cross-field, and with ``check_hardware`` this machine's limits) is
    collected and raised once as a ConfigError.
    """
    data: dict = {}
    source = "config"
    if path:
        path = resolve_config_path(path)
        source = str(path)
        data = read_yaml_mapping(path, source)
    data = apply_overrides(data, overrides or [], values)
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:
        probs = _problems_from(e)
        base = (data.get("model") or {}).get("base") if isinstance(data.get("model"), dict) else None
        if isinstance(base, str) and not any(p.path == "model.base" for p in probs):
            probs += _model_base_problems(base)  # reported with the schema problems, not after their fix
        raise ConfigError(probs, source) from None
    probs = semantic_problems(cfg) + (hardware_problems(cfg, cuda_available) if check_hardware else [])
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
