"""The knowledge base: one YAML file per condition (schema in docs/knowledge-base.md).

Medical knowledge lives in these files, never in code. This module holds the pydantic
schema (extra keys forbidden, so a typo is an error, not a silently ignored field), the
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
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..config.load import ConfigError, ConfigProblem
from ..utils.paths import resource_path

SCHEMA_VERSION = 1
# Physiologically possible bounds (not normal ranges): a distribution outside them is a
# unit slip (degF for degC, kPa for mmHg) or a typo.
VITAL_BOUNDS: dict[str, tuple[float, float]] = {
    "heart_rate": (20, 250), "systolic_bp": (40, 260), "diastolic_bp": (20, 160),
    "respiratory_rate": (4, 60), "temperature": (30, 43.5), "spo2": (50, 100),
}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgeRange(_Strict):
    min: float = Field(description="Youngest age in years (fractional for infants).")
    max: float = Field(description="Oldest age in years.")
    peak: float = Field(description="Most common age; the engine samples a triangular distribution.")


class RiskFactor(_Strict):
    name: str = Field(min_length=1, description="Risk factor as written in the history.")
    prevalence: float = Field(description="Chance a case has it, in (0, 1].")


class Epidemiology(_Strict):
    age: AgeRange = Field(description="Age range and peak in years.")
    sex: dict[Literal["male", "female"], float] = Field(description="Sex probabilities summing to 1.")
    risk_factors: list[RiskFactor] = Field(default_factory=list, description="Risk factors with prevalence.")


class Duration(_Strict):
    min: float = Field(gt=0, description="Shortest duration at presentation.")
    max: float = Field(gt=0, description="Longest duration at presentation.")
    unit: Literal["minutes", "hours", "days", "weeks", "months", "years"] = Field(description="Time unit.")


class Finding(_Strict):
    name: str = Field(min_length=1, description="Symptom or exam finding in clinical words.")
    probability: float = Field(description="Chance it is present, in (0, 1].")
    discriminating: bool = Field(False, description="Separates this condition from its differentials.")


class Presentation(_Strict):
    chief_complaints: list[str] = Field(min_length=1, description="Complaints in the patient's words.")
    onset: Literal["sudden", "acute", "subacute", "chronic", "insidious", "episodic"] = Field(description="Onset.")
    duration: Duration = Field(description="Duration range at presentation.")
    course: str = Field(min_length=1, description="Course of the illness in one or two sentences.")
    symptoms: list[Finding] = Field(min_length=3, description="Symptoms with probabilities.")


class VitalDist(_Strict):
    mean: float = Field(description="Mean of the normal distribution.")
    sd: float = Field(gt=0, description="Standard deviation.")
    min: float = Field(description="Lower clip.")
    max: float = Field(description="Upper clip.")


class LabRange(_Strict):
    low: float = Field(description="Lower reference limit.")
    high: float = Field(description="Upper reference limit.")


class AbnormalRange(_Strict):
    min: float = Field(description="Lowest characteristic abnormal value.")
    max: float = Field(description="Highest characteristic abnormal value.")


class Lab(_Strict):
    name: str = Field(min_length=1, description="Lab name.")
    unit: str = Field(min_length=1, description="Unit of reference and abnormal values.")
    reference: LabRange = Field(description="Normal range in this unit.")
    abnormal: AbnormalRange = Field(description="Characteristic abnormal range (sampled log-uniform).")
    probability: float = Field(description="Chance the lab is abnormal in a case, in (0, 1].")
    discriminating: bool = Field(False, description="Separates this condition from its differentials.")


class Imaging(_Strict):
    study: str = Field(min_length=1, description="Imaging, ECG or other study.")
    finding: str = Field(min_length=1, description="Characteristic finding.")
    probability: float = Field(description="Chance the finding is present, in (0, 1].")
    discriminating: bool = Field(False, description="Separates this condition from its differentials.")


class Differential(_Strict):
    condition: str | None = Field(None, description="Id of a KB condition.")
    name: str | None = Field(None, description="Declared name of a condition not in the KB.")
    discriminator: str = Field(min_length=1, description="The feature that tells them apart.")

    @model_validator(mode="after")
    def _one_target(self) -> Differential:
        if (self.condition is None) == (self.name is None):
            raise ValueError("give exactly one of `condition:` (a KB id) or `name:` (a declared name)")
        return self


class Diagnostics(_Strict):
    best_initial_test: str = Field(min_length=1, description="Best initial test.")
    confirmatory_test: str = Field(min_length=1, description="Confirmatory test.")


class Management(_Strict):
    first_line: list[str] = Field(min_length=1, description="First-line management.")
    next_best_step: str = Field(min_length=1, description="Gold answer of the management MCQ.")
    wrong_next_steps: list[str] = Field(min_length=3, description="Plausible but wrong next steps (>= 3).")
    contraindications: list[str] = Field(default_factory=list, description="Key contraindications.")


class Condition(_Strict):
    schema_version: Literal[1] = Field(description="KB schema version (1).")
    id: str = Field(pattern=r"^[a-z0-9_]+$", description="Condition id; equals the file stem.")
    name: str = Field(min_length=1, description="Display name, the answer text.")
    specialty: str = Field(min_length=1, description="Specialty; equals the parent folder name.")
    aliases: list[str] = Field(default_factory=list, description="Other names an answer may use.")
    icd10: str | None = Field(None, description="ICD-10 code.")
    demographic_neutral: bool = Field(False, description="Bias-probe copies are made only when true.")
    pregnancy: bool = Field(False, description="Condition of pregnancy (female 15-50 cases).")
    epidemiology: Epidemiology
    presentation: Presentation
    exam_findings: list[Finding] = Field(min_length=1, description="Exam findings.")
    vitals: dict[str, VitalDist] = Field(default_factory=dict, description="Abnormal vital distributions.")
    labs: list[Lab] = Field(default_factory=list, description="Characteristic labs.")
    imaging: list[Imaging] = Field(default_factory=list, description="Imaging, ECG and other studies.")
    differentials: list[Differential] = Field(min_length=3, description=">= 3 differentials.")
    diagnostics: Diagnostics
    management: Management
    red_flags: list[str] = Field(min_length=1, description="Red flags.")
    patient_explanation: str = Field(min_length=1, description="Plain-language explanation.")
    sources: list[str] = Field(min_length=1, description="Guidelines or textbooks (>= 1).")


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
    from .kb_rules import condition_problems

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
    from .kb_rules import differential_problems

    for cid, cond in conditions.items():
        for loc, message, fix in differential_problems(cond, conditions):
            _FileProblems(files[cid], files[cid].read_text(encoding="utf-8"), problems).add(loc, message, fix)
    if problems:
        raise KBError(problems)
    return KnowledgeBase(conditions, files, f"{SCHEMA_VERSION}+{digest.hexdigest()[:12]}")
