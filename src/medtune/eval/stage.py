"""`medtune eval run` as a function: one model, the configured benchmarks, each by its protocols.

Each benchmark and protocol gets its own resumable folder ``OUT/<benchmark>-<protocol>``; an
``index.json`` lists them with their headline accuracy. Before the model loads, every folder's
fingerprint is checked (``eval/identity.py``): rows of another model, prompt, decoding or
benchmark file are refused, naming what differs, unless ``overwrite``. The backend is built
once and reused for every benchmark.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config.sections.eval import EvalSection
from ..data.hf import dataset_fingerprint, is_hf_spec
from ..utils.hashcache import cached_sha256
from ..utils.io import atomic_write_json, sha256_text
from .backends import build_backend
from .benchmarks import (
    BenchmarkError,
    BenchmarkSpec,
    get_benchmark,
    load_benchmark_records,
    resolve_files,
)
from .evaluate import evaluate
from .identity import Decoding, EvalModel, build_fingerprint, describe_model
from .store import PredictionStore


def benchmark_source_sha(spec: BenchmarkSpec, data_root: str | Path | None) -> str:
    """sha256 over the benchmark's source files (and importer option files, e.g. PubMedQA's id list)."""
    files = [str(f) for f in resolve_files(spec, data_root)]
    for key, value in spec.importer_options.items():
        if key.endswith("_file") and isinstance(value, str):
            files.append(str(Path(value) if Path(value).is_absolute() else Path(data_root or ".") / value))
    parts = [[Path(f).name, dataset_fingerprint(f) if is_hf_spec(f) else cached_sha256(f)] for f in files]
    return sha256_text(json.dumps(parts))


def _decoding(section: EvalSection) -> Decoding:
    return Decoding(max_new_tokens=section.max_new_tokens, temperature=section.temperature,
                    num_samples=section.num_samples, seed=section.seed)


def prompt_overrides(section: EvalSection) -> dict[str, str | None]:
    """``describe_model``'s reasoning_format / system_prompt from the section: None = the training run's, else the model's."""
    return {"reasoning_format": None if section.reasoning_format == "auto" else section.reasoning_format,
            "system_prompt": section.system_prompt}


def run_eval(model: str, section: EvalSection, out_dir: str | Path, *, device: str = "auto", dtype: str = "auto",
             log: Callable[[str], None] = print, overwrite: bool = False) -> dict[str, Any]:
    """Evaluate ``model`` (preset, HF id, folder, run folder, .gguf or endpoint model name) on section.benchmarks.

    A training run is asked with its training reasoning format and system prompt unless
    ``section.reasoning_format`` / ``section.system_prompt`` override them (``""`` = explicitly none).
    ``overwrite`` discards earlier predictions in the benchmark folders and starts over; ``dtype`` is config
    ``model.dtype``, the dtype transformers weights load in.
    """
    if not section.benchmarks:
        raise BenchmarkError("no benchmarks given: pass --benchmark NAME (see `medtune eval list`) or a record file, "
                             "or set eval.benchmarks in the config")
    specs = [get_benchmark(b) for b in section.benchmarks]  # fail on a typo before loading a model
    if unknown := section.unknown_protocol_keys([s.name for s in specs]):
        raise BenchmarkError(f"eval.protocols names {', '.join(unknown)}, which is not among the benchmarks "
                             f"evaluated ({', '.join(s.name for s in specs)})")
    datasets = [(s, load_benchmark_records(s, section.data_root, limit=section.limit)) for s in specs]
    target = describe_model(model, backend=section.backend, endpoint=section.endpoint, device=device, dtype=dtype,
                            **prompt_overrides(section))
    out_dir = Path(out_dir)
    plan = []
    for spec, records in datasets:
        source_sha = benchmark_source_sha(spec, section.data_root)
        for protocol in section.protocols_for(spec.name):
            folder = out_dir / f"{spec.name}-{protocol}"
            if not overwrite:  # every folder checked before the model loads
                PredictionStore(folder / "predictions.jsonl").check(build_fingerprint(
                    target, protocol=protocol, spec=spec, benchmark_sha256=source_sha, decoding=_decoding(section)))
            plan.append((spec, protocol, records, folder, source_sha))
    log(_prompt_line(target))
    backend = build_backend(model, backend=section.backend, batch_size=section.batch_size, endpoint=section.endpoint,
                            reasoning_format=target.reasoning_format, device=device, dtype=dtype)
    index: dict[str, Any] = {"model": model, "model_identity": target.identity,
                             "prompt": {"system_prompt": target.system_prompt, "reasoning_format": target.reasoning_format,
                                        "from": target.prompt_source}, "benchmarks": {}}
    for spec, protocol, records, folder, source_sha in plan:
        log(f"{spec.name}: {len(records)} items, protocol {protocol} -> {folder}")
        d = _decoding(section)
        summary = evaluate(
            backend, spec, records, folder, protocol=protocol, max_new_tokens=d.max_new_tokens,
            temperature=d.temperature, num_samples=d.num_samples, seed=d.seed, permutations=section.permutations,
            chunk_size=max(section.batch_size * 4, 16), log=log, model=target, benchmark_sha256=source_sha,
            overwrite=overwrite, limit=section.limit,
        )
        index["benchmarks"][section.result_name(spec.name, protocol)] = {
            "folder": str(folder), "protocol": protocol, "accuracy": summary["accuracy"],
            "accuracy_norm": summary.get("accuracy_norm"), "chance": summary.get("chance")}
        atomic_write_json(out_dir / "index.json", index)
    return index


def _prompt_line(target: EvalModel) -> str:
    system = repr(target.system_prompt) if target.system_prompt else "none"
    return f"prompt: reasoning format {target.reasoning_format}, system prompt {system} ({target.prompt_source})"
