"""`medtune eval run` as a function: one model, the configured benchmarks, one protocol.

Each benchmark gets its own resumable folder ``OUT/<benchmark>-<protocol>``; an
``index.json`` lists them with their headline accuracy. The backend is built once and
reused for every benchmark.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config.sections.eval import EvalSection
from ..utils.io import atomic_write_json
from .backends import build_backend
from .benchmarks import get_benchmark, load_benchmark_records
from .evaluate import evaluate


def run_eval(model: str, section: EvalSection, out_dir: str | Path, *, device: str = "auto",
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Evaluate ``model`` (preset, HF id, folder, run folder, .gguf or endpoint model name) on section.benchmarks."""
    if not section.benchmarks:
        raise ValueError("no benchmarks given: pass --benchmark NAME (see `medtune eval list`) or a record file")
    specs = [get_benchmark(b) for b in section.benchmarks]  # fail on a typo before loading a model
    datasets = [(s, load_benchmark_records(s, section.data_root, limit=section.limit)) for s in specs]
    backend = build_backend(model, backend=section.backend, batch_size=section.batch_size, endpoint=section.endpoint, device=device)
    out_dir = Path(out_dir)
    index: dict[str, Any] = {"model": model, "protocol": section.protocol, "benchmarks": {}}
    for spec, records in datasets:
        folder = out_dir / f"{spec.name}-{section.protocol}"
        log(f"{spec.name}: {len(records)} items, protocol {section.protocol} -> {folder}")
        summary = evaluate(
            backend, spec, records, folder, protocol=section.protocol, max_new_tokens=section.max_new_tokens,
            temperature=section.temperature, num_samples=section.num_samples, seed=section.seed,
            permutations=section.permutations, chunk_size=max(section.batch_size * 4, 16), log=log,
        )
        index["benchmarks"][spec.name] = {"folder": str(folder), "accuracy": summary["accuracy"],
                                          "accuracy_norm": summary.get("accuracy_norm"), "chance": spec.chance}
        atomic_write_json(out_dir / "index.json", index)
    return index
