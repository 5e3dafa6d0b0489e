"""Find and read what a run folder holds: training runs, evaluations, comparisons, exports, data manifests.

A report is built from the files the stages already write, never from a second copy of
their numbers: ``manifest.json`` + ``metrics.jsonl`` + ``config.yaml`` (train),
``summary.json`` + ``predictions.jsonl`` (eval), ``compare.json`` (paired comparison),
``export_summary.json`` (export) and data ``manifest.json`` files (import/mix/split).
The folder layout is not assumed: the tree under the given folder is searched (a few
levels deep, skipping model weights and checkpoints), so a quickstart run, a
``medtune run`` folder, one evaluation folder or one comparison folder all work.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..eval.store import PredictionStore

SKIP_DIRS = {"adapter", "model", "merged", "best", "checkpoints", "tensorboard", "__pycache__"}
MAX_DEPTH = 4


class ReportError(ValueError):
    """A run or evaluation folder the report cannot read (the message names the file and field)."""


@dataclass
class TrainingRun:
    folder: Path
    label: str
    manifest: dict[str, Any]
    metrics: list[dict[str, Any]]
    config_text: str | None = None
    config_hash: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    data_manifests: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Evaluation:
    folder: Path
    label: str
    summary: dict[str, Any]
    rows: list[dict[str, Any]]  # main items only (option-permutation copies feed a summary figure, not the browser)

    @property
    def key(self) -> str:
        return str(self.folder.resolve())


@dataclass
class Comparison:
    folder: Path
    label: str
    result: dict[str, Any]
    a: Evaluation | None = None
    b: Evaluation | None = None


@dataclass
class ExportInfo:
    folder: Path
    label: str
    summary: dict[str, Any]


@dataclass
class RunContents:
    root: Path
    trainings: list[TrainingRun] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    exports: list[ExportInfo] = field(default_factory=list)
    contamination: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.trainings or self.evaluations or self.comparisons or self.exports)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from e
    except UnicodeDecodeError as e:
        raise ReportError(f"{path}: not UTF-8 text ({e.reason})") from e
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _require(data: dict[str, Any], path: Path, *keys: str) -> None:
    for key in keys:
        node: Any = data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ReportError(f"{path}: field '{key}' is missing; was this file written by medtune?")
            node = node[part]


def _label(folder: Path, root: Path) -> str:
    try:
        rel = folder.resolve().relative_to(root.resolve())
    except ValueError:
        return str(folder)
    return str(rel) if str(rel) != "." else folder.resolve().name


def read_summary(path: Path) -> dict[str, Any]:
    """An evaluation's summary.json, with the fields every reader of it relies on (ReportError naming the file
    and field otherwise): the report and the model card both read summaries through this."""
    summary = read_json(path)
    _require(summary, path, "benchmark", "protocol", "accuracy.accuracy", "accuracy.ci95", "accuracy.n")
    return summary


def load_evaluation(folder: Path, root: Path) -> Evaluation:
    summary = read_summary(folder / "summary.json")
    try:
        rows = PredictionStore(folder / "predictions.jsonl").load()
    except ValueError as e:  # a corrupt line, a row without an id, a duplicate id: the store names file and line
        raise ReportError(str(e)) from e
    main = [r for r in rows if not (r.get("group") or {}).get("perm_of")]
    if isinstance(summary.get("item_ids"), list):  # rows of other items (an earlier, larger --limit) are not its rows
        covered = set(map(str, summary["item_ids"]))
        main = [r for r in main if str(r["id"]) in covered]
    return Evaluation(folder, _label(folder, root), summary, main)


def load_training(folder: Path, root: Path) -> TrainingRun:
    manifest = read_json(folder / "manifest.json")
    metrics: list[dict[str, Any]] = []
    metrics_path = folder / "metrics.jsonl"
    if metrics_path.is_file():
        from ..data.importers.base import iter_raw_rows  # the one JSONL reader

        for raw in iter_raw_rows(metrics_path):
            if raw.error is not None:
                raise ReportError(f"{metrics_path}:{raw.loc}: {raw.error.reason}")
            if "step" not in raw.data:
                raise ReportError(f"{metrics_path}:{raw.loc}: field 'step' is missing")
            metrics.append(raw.data)
    run = TrainingRun(folder, _label(folder, root), manifest, metrics)
    config = folder / "config.yaml"
    if config.is_file():
        run.config_text = config.read_text(encoding="utf-8")
        first = run.config_text.splitlines()[0] if run.config_text else ""
        run.config_hash = first.split("sha256[:16]=", 1)[1].strip() if "sha256[:16]=" in first else None
        try:
            parsed = yaml.safe_load(run.config_text)
        except yaml.YAMLError as e:
            raise ReportError(f"{config}: not valid YAML ({e})") from e
        run.config = parsed if isinstance(parsed, dict) else {}
    for data_file in manifest.get("data_files") or {}:
        data_manifest = Path(data_file).parent / "manifest.json"
        if data_manifest.is_file() and data_manifest.resolve() != (folder / "manifest.json").resolve():
            found = read_json(data_manifest)
            if "kind" in found and found not in run.data_manifests:
                run.data_manifests.append({"path": str(data_manifest), **found})
    return run


def _is_training(folder: Path, names: set[str]) -> bool:
    return "manifest.json" in names and ("metrics.jsonl" in names or "adapter" in names or "model" in names)


def _walk(root: Path):
    """(folder, file and dir names) for root and its subfolders up to MAX_DEPTH, weights and checkpoints skipped."""
    base_depth = len(root.resolve().parts)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        depth = len(here.resolve().parts) - base_depth
        names = set(filenames) | set(dirnames)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".") and depth < MAX_DEPTH)
        yield here, names


def _referenced_training(ev: Evaluation, known: set[str], root: Path) -> TrainingRun | None:
    """The training run an evaluation's model label points to (``medtune eval run RUN``), if it is on disk."""
    model = Path(str(ev.summary.get("model", "")))
    if model.is_dir() and (model / "manifest.json").is_file() and str(model.resolve()) not in known:
        return load_training(model, root)
    return None


def _resolve_side(path_text: str, comparison_folder: Path, evaluations: list[Evaluation], root: Path) -> Evaluation | None:
    """A comparison side: its recorded path, else the same-named folder beside compare.json."""
    for candidate in (Path(path_text), comparison_folder / Path(path_text).name):
        if (candidate / "summary.json").is_file():
            key = str(candidate.resolve())
            known = next((e for e in evaluations if e.key == key), None)
            if known is not None:
                return known
            ev = load_evaluation(candidate, root)
            evaluations.append(ev)
            return ev
    return None


def collect(root: str | Path) -> RunContents:
    """Everything a report shows, read from ``root`` (a run folder, an evaluation or a comparison folder)."""
    root = Path(root)
    if not root.is_dir():
        raise ReportError(f"{root}: not a folder (give a run folder or an evaluation folder)")
    out = RunContents(root)
    for folder, names in _walk(root):
        if "summary.json" in names and "predictions.jsonl" in names:
            out.evaluations.append(load_evaluation(folder, root))
        if "compare.json" in names:
            result = read_json(folder / "compare.json")
            _require(result, folder / "compare.json", "a", "b", "items", "accuracy_a", "accuracy_b", "mcnemar")
            out.comparisons.append(Comparison(folder, _label(folder, root), result))
        if _is_training(folder, names):
            run = load_training(folder, root)
            if "base_model" in run.manifest:  # not a data or stage manifest
                out.trainings.append(run)
        if "export_summary.json" in names:
            out.exports.append(ExportInfo(folder, _label(folder, root), read_json(folder / "export_summary.json")))
        for name in sorted(n for n in names if n.startswith("contamination") and n.endswith(".json")):
            found = read_json(folder / name)
            if "checked" in found and "flagged" in found:
                out.contamination.append({"path": str(folder / name), **found})
    for cmp in out.comparisons:
        cmp.a = _resolve_side(str(cmp.result["a"]), cmp.folder, out.evaluations, root)
        cmp.b = _resolve_side(str(cmp.result["b"]), cmp.folder, out.evaluations, root)
    known = {str(t.folder.resolve()) for t in out.trainings}
    for ev in list(out.evaluations):
        run = _referenced_training(ev, known, root)
        if run is not None:
            out.trainings.append(run)
            known.add(str(run.folder.resolve()))
    if out.empty:
        raise ReportError(f"{root}: no run outputs found (looked for summary.json + predictions.jsonl, compare.json, "
                          "manifest.json + metrics.jsonl and export_summary.json up to 4 levels down)")
    return out
