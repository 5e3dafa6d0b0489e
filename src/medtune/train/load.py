"""Load a trained run for eval/export/serve: base + adapter (or the full model), plus tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..models.load import LoadedModel, load_model
from ..models.source import ModelLoadError

INIT_MODEL = "init/model"  # a PEFT run started from a full fine-tune: that model, its adapter's base (manifest init_model)


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        raise ModelLoadError(f"{path}: not a finished medtune run (no manifest.json); train it first or pick another folder")
    return json.loads(path.read_text(encoding="utf-8"))


def adapter_base(run: Path, manifest: dict) -> str:
    """The model a PEFT run's adapter applies to: the model a second stage started from (``init_model``),
    else the base it trained on (:func:`manifest_base`). Loading, evaluation identity and serving all
    resolve it here, so they never name different models for one run."""
    if manifest.get("init_model"):  # never the original base: the adapter was trained on the fine-tuned model
        init = run / manifest["init_model"]
        if not (init / "config.json").is_file():
            raise ModelLoadError(f"{init}: the model this run started from is missing; the run folder is incomplete")
        return str(init)
    return manifest_base(manifest)


def manifest_base(manifest: dict) -> str:
    """The base a run trained on, as a spec every loader takes: its ``base_path`` while it exists; else (a run
    moved to another machine) ``base_model`` at ``base_revision``, given as that revision's local snapshot
    (fetched if needed), because a loader handed the bare spec would load whatever the Hub's ``main`` is now.

    Without a revision the spec is returned as is (nothing to pin). A snapshot that cannot be had is the
    loaders' own clear error (``models.source.ModelLoadError``), raised here.
    """
    base_path = manifest.get("base_path")
    if base_path and Path(base_path).exists():
        return base_path
    if not manifest.get("base_revision"):
        return _embedded_before_20261205(manifest) or manifest["base_model"]
    from ..models.source import ensure_local, resolve_source

    return str(ensure_local(resolve_source(manifest["base_model"]), manifest["base_revision"]))


def _embedded_before_20261205(manifest: dict) -> str | None:
    """Runs trained before 2026-12-05 with ``HuggingFaceTB/SmolLM2-135M-Instruct`` as their base got the embedded copy
    (that id meant it then; its base_path is the materialized ``smollm2-135m`` folder). Moved to another disk they
    must find that copy again, not the published checkpoint the id means now."""
    from ..models.embedded import EMBEDDED_NAME
    from ..models.registry import get_preset

    base, path = str(manifest.get("base_model") or ""), str(manifest.get("base_path") or "")
    hub_id = get_preset(EMBEDDED_NAME).hf_id
    return EMBEDDED_NAME if base.lower() == hub_id.lower() and Path(path).name == EMBEDDED_NAME else None


def load_trained(run_dir: str | Path, *, device: str = "auto", dtype: str = "auto", merge: bool = False) -> LoadedModel:
    """The tuned model of a run folder as a :class:`LoadedModel` (``path`` = the run's output).

    For PEFT runs the base named in the manifest is loaded (a second stage started from a full fine-tune:
    that model, copied to ``RUN/init/model``, manifest ``init_model``), the adapters a second-stage run started
    from (``RUN/init/*``, manifest ``init_adapters``) merged into it in order, and ``RUN/adapter`` applied
    (``merge=True`` folds the adapter into the weights, e.g. before export); for full
    fine-tuning ``RUN/model`` is loaded directly. The tokenizer is the one saved with the run.
    """
    from peft import PeftModel
    from transformers import AutoTokenizer

    run = Path(run_dir)
    manifest = read_manifest(run)
    if (run / "model").is_dir():
        loaded = load_model(str(run / "model"), device=device, dtype=dtype)
        loaded.path = run / "model"
        return loaded
    adapter = run / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise ModelLoadError(f"{run}: neither model/ nor adapter/adapter_config.json found")
    loaded = load_model(adapter_base(run, manifest), device=device, dtype=dtype)
    loaded.model = merge_init_adapters(loaded.model, run, manifest)
    # A half-precision base (bf16 inference on this machine) gets its adapter in the same dtype, so no
    # forward pays an fp32 detour through 200 LoRA modules; an fp32 base keeps fp32 adapters.
    model = PeftModel.from_pretrained(loaded.model, str(adapter), autocast_adapter_dtype=False)
    model.eval()
    if merge:
        model = model.merge_and_unload()
    tok = AutoTokenizer.from_pretrained(str(adapter))
    tok.padding_side = loaded.tokenizer.padding_side
    if not getattr(tok, "chat_template", None):
        tok.chat_template = loaded.tokenizer.chat_template
    loaded.model, loaded.tokenizer, loaded.path = model, tok, adapter
    return loaded


def merge_init_adapters(model: Any, run: Path, manifest: dict[str, Any] | None = None) -> Any:
    """A second-stage run's starting point: the adapters it started from (``RUN/init/*``), merged into the base in order.

    Every reader of a run (``load_trained``, export's merge) calls this before applying ``RUN/adapter``;
    a run of the first stage has none and gets ``model`` back unchanged.
    """
    from peft import PeftModel

    if manifest is None:
        manifest = read_manifest(run) if (run / "manifest.json").is_file() else {}
    inits = manifest.get("init_adapters", [])
    for init in inits:
        if not (run / init / "adapter_config.json").is_file():
            raise ModelLoadError(f"{run / init}: the adapter this run started from is missing; the run folder is incomplete")
        model = PeftModel.from_pretrained(model, str(run / init), autocast_adapter_dtype=False).merge_and_unload()
    return model
