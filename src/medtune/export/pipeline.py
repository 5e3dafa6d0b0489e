"""``export_run``: merge (if needed) -> GGUF per type -> verify -> Modelfile -> model card.

Output layout (``out_dir``, default RUN/export)::

    merged/                  standalone HF folder (safetensors, tokenizer, chat template)
    <name>-f16.gguf ...      one file per requested type
    Modelfile                Ollama, FROM the first type of MODELFILE_PREFERENCE exported (not chosen by verification)
    README.md                model card
    export_summary.json      everything below, for quickstart / eval / serve
"""

from __future__ import annotations

import importlib.util
import logging
import re
import time
from pathlib import Path
from typing import Any

from ..utils.io import atomic_write_json, sha256_file
from .card import find_eval_results, write_model_card
from .common import (
    LLAMA_CPP_HINT,
    PROVENANCE_FILE,
    ExportError,
    LlamaCppMissing,
    Provenance,
    is_hf_folder,
    is_run_folder,
    read_json,
    read_provenance,
    read_run_config,
)
from .gguf import convert_hf_to_gguf
from .merge import merge_run, stored_dtype
from .ollama import write_modelfile
from .quantize import NATIVE, needs_llama_cpp, normalize_quants, quantize_gguf

log = logging.getLogger(__name__)
# The Modelfile's (and the serve stage's) file: a fixed order, small first. It does not look at verification:
# K-quants lead although verification only reports them, and a file that failed verification fails the export.
MODELFILE_PREFERENCE = ("q4_k_m", "q5_k_m", "q8_0", "q6_k", "q4_k_s", "q5_k_s", "q4_0", "f16", "bf16", "f32")


def modelfile_type(files: dict[str, Any]) -> str:
    """The exported type the Modelfile points at: the first of MODELFILE_PREFERENCE, else the first file.

    >>> modelfile_type({"f16": "a", "q8_0": "b", "q4_k_m": "c"}), modelfile_type({"f32": "a", "f16": "b"})
    ('q4_k_m', 'f16')
    """
    return next(q for q in MODELFILE_PREFERENCE + tuple(files) if q in files)


def llama_cpp_available() -> bool:
    """True when llama-cpp-python is importable (K-quants and verification need it)."""
    return importlib.util.find_spec("llama_cpp") is not None


def verify_status(rows: list[dict[str, Any]]) -> str:
    """"failed" if any file failed, "passed" if some were judged and all passed,
    "reported" if verification ran but judged nothing (K-quants only), "unverified" if it did not run.

    >>> verify_status([]), verify_status([{"passed": None}]), verify_status([{"passed": True}, {"passed": None}])
    ('unverified', 'reported', 'passed')
    """
    if not rows:
        return "unverified"
    if any(r["passed"] is False for r in rows):
        return "failed"
    return "passed" if any(r["passed"] for r in rows) else "reported"


def model_name(prov: Provenance, merged: Path) -> str:
    """File-name stem: medtune-<run id> or the folder name, reduced to [a-z0-9._-].

    >>> model_name(Provenance(run_id="SFT run/1"), Path("x"))
    'medtune-sft-run-1'
    """
    raw = f"medtune-{prov.run_id}" if prov.run_id else merged.name
    return re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("-") or "model"


def _reusable_merge(run: Path) -> Path | None:
    """RUN/merged from an earlier `medtune merge`, if it was made from the current adapter and saved in fp32
    (earlier medtune versions saved a bf16 base's merge in bf16, rounding it: that one is merged again)."""
    merged, adapter = run / "merged", run / "adapter" / "adapter_model.safetensors"
    if not (is_hf_folder(merged) and (merged / PROVENANCE_FILE).is_file() and adapter.is_file()):
        return None
    if stored_dtype(merged) != "float32":
        log.info("%s is stored in %s (a rounded merge): merging again in fp32", merged, stored_dtype(merged))
        return None
    return merged if read_provenance(merged).adapter_sha256 == sha256_file(adapter) else None


def resolve_merged(source: Path, out_dir: Path) -> tuple[Path, Path | None]:
    """(merged HF folder, run folder or None) for a run folder or an already merged folder."""
    if is_run_folder(source):
        return (_reusable_merge(source) or merge_run(source, out_dir / "merged")), source
    if is_hf_folder(source):
        return source, None
    raise ExportError(f"{source}: neither a run folder (adapter/ or model/) nor an HF folder (config.json + *.safetensors)")


def _recipe(run: Path | None) -> dict[str, Any]:
    """A few training settings for the card, flattened from RUN/config.yaml."""
    train = (read_run_config(run).get("train") or {}) if run else {}
    out = {f"train.{k}": v for k, v in train.items() if isinstance(v, (int, float, str, bool)) and v is not None}
    for k, v in (train.get("lora") or {}).items():
        if isinstance(v, (int, float, str, bool)):
            out[f"train.lora.{k}"] = v
    return dict(list(out.items())[:16])


def _make_ggufs(merged: Path, out_dir: Path, name: str, quants: list[str], prov: Provenance) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for q in [q for q in quants if q in NATIVE]:
        files[q] = out_dir / f"{name}-{q}.gguf"
        convert_hf_to_gguf(merged, files[q], q, prov)
    kquants = [q for q in quants if needs_llama_cpp(q)]
    if kquants:
        f16 = files.get("f16") or out_dir / f".{name}-f16-intermediate.gguf"
        if "f16" not in files:
            convert_hf_to_gguf(merged, f16, "f16", prov)
        try:
            for q in kquants:
                files[q] = quantize_gguf(f16, out_dir / f"{name}-{q}.gguf", q)
        finally:
            if "f16" not in files:
                f16.unlink(missing_ok=True)
    return {q: files[q] for q in quants}


def _write_card(out: Path, run: Path | None, merged: Path, prov: Provenance, gguf_files: list[Path],
                verify_rows: list[dict[str, Any]]) -> Path:
    """README.md: the recipe, the files and their verification, and this model's evaluations as they are now."""
    return write_model_card(out, prov, model_name(prov, merged), find_eval_results(run, merged), gguf_files, verify_rows,
                            _recipe(run))


def rewrite_model_card(out_dir: str | Path, run: Path | None = None) -> Path:
    """Write the card of an export again from its export_summary.json, converting nothing: for an evaluation that
    changed after the export (``medtune run`` reruns eval alone when only an eval setting changed), so the card
    never cites numbers the evaluation folder no longer holds. ``run``: the training run it was exported from."""
    out = Path(out_dir)
    summary_path = out / "export_summary.json"
    if not summary_path.is_file():
        raise ExportError(f"{summary_path}: not found; export the model first (`medtune export`)")
    summary = read_json(summary_path)
    prov = Provenance.from_dict(summary.get("provenance", {}))
    files = [Path(f["path"]) for f in summary.get("files", {}).values()]
    return _write_card(out, run, Path(summary["merged"]), prov, files, summary.get("verify") or [])


def export_run(run_or_merged: str | Path, out_dir: str | Path | None = None, quants: list[str] | str = ("q8_0",),
               verify: bool = True, modelfile: bool = True, model_card: bool = True) -> dict[str, Any]:
    """Merge if needed, write each GGUF type, verify against the merged model, write Modelfile + card.

    K-quants need llama-cpp-python (checked before any work, with the install command);
    verification also needs it and is skipped with a recorded reason when it is missing.
    Returns (and writes to out_dir/export_summary.json) paths, sizes, verify rows, timings.
    """
    t0, cpu0 = time.perf_counter(), time.process_time()
    source = Path(run_or_merged)
    quants = normalize_quants(list(quants) if not isinstance(quants, str) else quants)
    if any(needs_llama_cpp(q) for q in quants) and not llama_cpp_available():
        raise LlamaCppMissing(f"K-quants ({', '.join(q for q in quants if needs_llama_cpp(q))}): {LLAMA_CPP_HINT}")
    out = Path(out_dir) if out_dir else (source / "export" if is_run_folder(source) else source.parent / f"{source.name}-gguf")
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    merged, run = resolve_merged(source, out)
    timings["merge_s"] = round(time.perf_counter() - t0, 1)
    prov = read_provenance(merged if (merged / PROVENANCE_FILE).is_file() else (run or merged))
    name = model_name(prov, merged)
    t = time.perf_counter()
    files = _make_ggufs(merged, out, name, quants, prov)
    timings["convert_s"] = round(time.perf_counter() - t, 1)
    summary: dict[str, Any] = {"merged": str(merged), "out_dir": str(out), "provenance": prov.to_dict(),
                               "files": {q: {"path": str(p), "bytes": p.stat().st_size, "sha256": sha256_file(p)} for q, p in files.items()}}
    rows: list[dict[str, Any]] = []
    if not verify:
        summary["verify_skipped"] = "verification turned off (export.verify=false / --no-verify)"
    elif not llama_cpp_available():
        summary["verify_skipped"] = f"llama-cpp-python is not installed; {LLAMA_CPP_HINT}"
    else:
        from .verify import verify_ggufs

        t = time.perf_counter()
        rows = verify_ggufs(list(files.values()), merged)
        timings["verify_s"] = round(time.perf_counter() - t, 1)
    summary["verify"] = rows
    if modelfile:
        summary["modelfile"] = str(write_modelfile(out, files[modelfile_type(files)], merged, prov))
    if model_card:
        summary["model_card"] = str(_write_card(out, run, merged, prov, list(files.values()), rows))
    timings["total_s"] = round(time.perf_counter() - t0, 1)
    timings["cpu_s"] = round(time.process_time() - cpu0, 1)  # wall time on a shared CPU overstates the work
    summary["timings"] = timings
    summary["verify_status"] = verify_status(rows)
    # True only for a verification that ran and judged; None when unverified or only reported
    summary["passed"] = {"passed": True, "failed": False}.get(summary["verify_status"])
    atomic_write_json(out / "export_summary.json", summary)
    return summary
