"""Environment report for `medtune doctor`: what works, what is missing and how to install it."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .utils.paths import DATA_ROOT_ENV, benchmark_data_root

CORE = ["torch", "transformers", "peft", "trl", "accelerate", "datasets", "tokenizers", "safetensors", "gguf", "pydantic", "yaml"]
OPTIONAL = {
    "llama_cpp": "bash scripts/install_llama_cpp.sh, or pip install 'medtune[gguf]' (compiles llama.cpp, ~9 min on 2 cores; "
                 "K-quants, verification, llama.cpp inference; on AMX CPUs see docs/export.md)",
    "bitsandbytes": "pip install 'medtune[gpu]'  (CUDA only; QLoRA 4-bit and adamw_8bit)",
    "vllm": "pip install 'medtune[vllm]'  (CUDA only; fast GPU evaluation and serving)",
    "fastapi": "pip install 'medtune[serve]'  (the OpenAI-compatible server)",
}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:
        return None
    return getattr(mod, "__version__", "installed")


def torch_checks() -> list[Check]:
    out = []
    v = _version("torch")
    if v is None:
        return [Check("torch", False, "not importable -> pip install torch==2.13.0 (CPU) or the CUDA build for your GPU")]
    import torch

    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"
    out.append(Check("torch", True, f"{v} ({build}), {torch.get_num_threads()} CPU threads"))
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            bf16 = "bf16" if torch.cuda.is_bf16_supported() else "fp16 only"
            out.append(Check(f"cuda:{i}", True, f"{p.name}, {p.total_memory / 2**30:.1f} GiB, {bf16}", required=False))
    else:
        out.append(Check("cuda", False, "not available: training runs on CPU; QLoRA needs CUDA", required=False))
    mps = getattr(torch.backends, "mps", None)
    out.append(Check("mps", bool(mps and mps.is_available()), "Apple GPU" if mps and mps.is_available() else "not available", required=False))
    from .models.precision import describe_machine

    out.append(Check("precision", True, "auto = " + describe_machine(), required=False))
    return out


def system_checks() -> list[Check]:
    import psutil

    from .utils.paths import medtune_home

    home = medtune_home()
    home.mkdir(parents=True, exist_ok=True)
    vm = psutil.virtual_memory()
    disk = shutil.disk_usage(home)
    return [
        Check("cpu", True, f"{os.cpu_count()} logical cores", required=False),
        Check("ram", True, f"{vm.total / 2**30:.1f} GiB total, {vm.available / 2**30:.1f} GiB available", required=False),
        Check("disk", disk.free > 2 * 2**30, f"{disk.free / 2**30:.1f} GiB free at {home}", required=False),
        Check("cache", True, f"MEDTUNE_HOME={home}", required=False),
    ]


def embedded_check() -> Check:
    from .models.embedded import (
        EmbeddedModelMissing,
        embedded_dir,
        embedded_gguf_path,
        is_materialized,
    )

    try:
        gguf = embedded_gguf_path()
    except EmbeddedModelMissing as e:
        return Check("embedded model", False, str(e))
    state = "materialized at " + str(embedded_dir()) if is_materialized() else "not yet materialized (first use converts it, ~30 s)"
    return Check("embedded model", True, f"{gguf.name} found; {state}")


def missing_benchmarks(root: Path | None) -> list[str]:
    """Declared benchmarks (resources/benchmarks/*.yaml) whose files are not under ``root``."""
    from .eval.benchmarks import BenchmarkError, load_benchmarks, resolve_files

    if root is None:
        return sorted(load_benchmarks())
    missing = []
    for name, spec in sorted(load_benchmarks().items()):
        try:
            resolve_files(spec, root)
        except BenchmarkError:
            missing.append(name)
    return missing


def data_root_hint(root: Path | None) -> str:
    """Where the benchmark files should go; shared by `medtune doctor` and the test suite."""
    where = str(root) if root is not None else "(no default outside a source checkout)"
    return (f"benchmark data not found at {where}: put medqa/, medmcqa/, pubmedqa/, mmlu_medical/ "
            f"in a folder and set {DATA_ROOT_ENV}=that folder (README, 'Benchmark data')")


def data_root_check() -> Check:
    root = benchmark_data_root()
    missing = missing_benchmarks(root)
    if not missing:
        return Check("benchmark data", True, f"{DATA_ROOT_ENV} -> {root}", required=False)
    return Check("benchmark data", False, f"{', '.join(missing)} missing -> {data_root_hint(root)}", required=False)


def llama_cpp_build_check() -> Check | None:
    """Flag a llama.cpp compiled with the AMX kernels that crash on quantized models (docs/export.md)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return None
    from .export.common import llama_cpp_amx_problem

    problem = llama_cpp_amx_problem()
    return Check("llama.cpp build", problem is None, problem or "no AMX kernels (safe on every CPU it was built for)",
                 required=False)


def run_checks() -> list[Check]:
    checks = torch_checks()
    for mod in CORE[1:]:
        v = _version(mod)
        checks.append(Check(mod, v is not None, v or f"missing -> pip install -e . (medtune's core dependency {mod})"))
    for mod, how in OPTIONAL.items():
        found = importlib.util.find_spec(mod) is not None
        checks.append(Check(mod, found, "installed" if found else f"optional, missing -> {how}", required=False))
    build = llama_cpp_build_check()
    if build is not None:
        checks.append(build)
    checks.append(embedded_check())
    checks.append(data_root_check())
    checks.extend(system_checks())
    return checks
