"""HF folder -> GGUF, written with the ``gguf`` package (no llama.cpp checkout, no network).

Neither the ``gguf`` wheel nor llama-cpp-python ships llama.cpp's
``convert_hf_to_gguf.py``, and cloning it at export time is exactly the failure
users of other toolkits hit; so medtune converts the architectures its presets
ship (``ARCHITECTURES``: the llama family with Mistral, Qwen2, Qwen3, Phi-2)
itself. Tensors stream from safetensors one at a time, so memory stays near the
largest single tensor.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .common import ExportError, Provenance
from .gguf_vocab import write_vocab

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchSpec:
    """How one HF model class maps onto a llama.cpp architecture."""

    gguf_arch: str
    # llama.cpp's `llama` ropes adjacent pairs (rope NORM); HF rotates halves, so q/k rows are
    # permuted. qwen2, qwen3 and phi2 use NEOX rope, which is HF's layout already.
    permute_qk: bool
    layer_norm: bool = False  # LayerNorm with bias (phi2) instead of RMSNorm
    needs_output: bool = False  # llama.cpp requires output.weight (phi2): a tied head is written twice


# HF class -> spec; one entry per architecture family the presets ship (resources/presets/*.yaml)
ARCHITECTURES = {
    "LlamaForCausalLM": ArchSpec("llama", permute_qk=True),
    "MistralForCausalLM": ArchSpec("llama", permute_qk=True),
    "Qwen2ForCausalLM": ArchSpec("qwen2", permute_qk=False),
    "Qwen3ForCausalLM": ArchSpec("qwen3", permute_qk=False),
    "PhiForCausalLM": ArchSpec("phi2", permute_qk=False, layer_norm=True, needs_output=True),
}
OUTTYPES = ("f32", "f16", "bf16", "q8_0")


@dataclass
class HParams:
    arch: str
    permute_qk: bool
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ctx: int
    n_vocab: int
    norm_eps: float
    rope_theta: float
    tied: bool
    rope_dim: int
    spec: ArchSpec = field(default_factory=lambda: ARCHITECTURES["LlamaForCausalLM"])
    rope: dict[str, Any] = field(default_factory=dict)


def unsupported_architecture(path: Path, archs: list[str]) -> ExportError:
    """One line naming the supported classes.

    >>> str(unsupported_architecture(Path("m/config.json"), ["GPT2LMHeadModel"])).split(";")[1]
    ' supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, PhiForCausalLM'
    """
    return ExportError(f"{path}: architecture {', '.join(archs) or '(none)'} is not supported by medtune's "
                       f"GGUF converter; supported: {', '.join(ARCHITECTURES)}")


def _refuse_variants(path: Path, cfg: dict[str, Any], spec: ArchSpec) -> None:
    """Config switches that change the computation in ways the GGUF architecture cannot express."""
    if spec.gguf_arch == "phi2" and (cfg.get("qk_layernorm") or cfg.get("hidden_act", "gelu_new") != "gelu_new"):
        raise ExportError(f"{path}: phi2 in llama.cpp has no q/k LayerNorm and uses tanh-GELU (gelu_new); "
                          f"this config has qk_layernorm={cfg.get('qk_layernorm')}, hidden_act={cfg.get('hidden_act')}")
    if spec.gguf_arch != "phi2" and cfg.get("hidden_act", "silu") != "silu":
        raise ExportError(f"{path}: hidden_act {cfg.get('hidden_act')!r}: {spec.gguf_arch} in llama.cpp is SiLU-gated")
    if cfg.get("use_sliding_window"):
        raise ExportError(f"{path}: use_sliding_window=true: {spec.gguf_arch} in llama.cpp attends to the whole context")


def read_hparams(model_dir: Path) -> HParams:
    """Read config.json; refuse architectures and rope variants we cannot convert faithfully."""
    path = model_dir / "config.json"
    cfg = json.loads(path.read_text(encoding="utf-8"))
    archs = cfg.get("architectures") or []
    if not archs or archs[0] not in ARCHITECTURES:
        raise unsupported_architecture(path, archs)
    spec = ARCHITECTURES[archs[0]]
    _refuse_variants(path, cfg, spec)
    rope = dict(cfg.get("rope_parameters") or cfg.get("rope_scaling") or {})
    theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", "linear", "llama3"):
        raise ExportError(f"{path}: rope_type {rope_type!r} is not supported (default, linear, llama3)")
    n_head = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    # Phi-2 rotates only the first partial_rotary_factor of each head (32 of 80 dimensions)
    partial = rope.get("partial_rotary_factor", cfg.get("partial_rotary_factor", 1.0))
    eps_key = "layer_norm_eps" if spec.layer_norm else "rms_norm_eps"
    return HParams(
        arch=spec.gguf_arch, permute_qk=spec.permute_qk, spec=spec, n_layer=cfg["num_hidden_layers"],
        n_embd=cfg["hidden_size"], n_ff=cfg["intermediate_size"], n_head=n_head,
        n_head_kv=cfg.get("num_key_value_heads") or n_head, head_dim=head_dim,
        n_ctx=cfg.get("max_position_embeddings", 2048), n_vocab=cfg["vocab_size"],
        norm_eps=cfg.get(eps_key, 1e-5 if spec.layer_norm else 1e-6), rope_theta=float(theta),
        tied=bool(cfg.get("tie_word_embeddings", False)), rope_dim=int(head_dim * partial),
        rope={**rope, "rope_type": rope_type},
    )


def permute_rotary(w: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder q/k rows from HF's rotate-half rotary layout to llama.cpp's adjacent-pair layout.

    HF pairs dimension i with i + d/2 inside each head; llama.cpp (rope mode NORM)
    pairs 2i with 2i+1. Shapes: (n_head * head_dim, n_embd) in and out.

    >>> w = np.arange(8, dtype=np.float32).reshape(8, 1)   # one head, head_dim 8
    >>> permute_rotary(w, 1)[:, 0].tolist()
    [0.0, 4.0, 1.0, 5.0, 2.0, 6.0, 3.0, 7.0]
    """
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(hp: HParams) -> np.ndarray:
    """Per-frequency divisors for Llama 3.1+ rope scaling (llama.cpp reads them as rope_freqs)."""
    r = hp.rope
    factor, low, high = r.get("factor", 8.0), r.get("low_freq_factor", 1.0), r.get("high_freq_factor", 4.0)
    old_ctx = r.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    freqs = 1.0 / (hp.rope_theta ** (np.arange(0, hp.head_dim, 2, dtype=np.float64) / hp.head_dim))
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def _weight_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [model_dir / n for n in names]
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{model_dir}: no *.safetensors weights (run `medtune merge` first)")
    return files


def _plan_tensors(model_dir: Path, hp: HParams) -> list[tuple[str, Path, str]]:
    """(hf name, file, gguf name) for every tensor we write, in file order."""
    import gguf
    from safetensors import safe_open

    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH[hp.arch.upper()], hp.n_layer)
    plan = []
    for file in _weight_files(model_dir):
        with safe_open(file, framework="pt") as f:
            for name in f.keys():
                if name.endswith("rotary_emb.inv_freq") or (hp.tied and name == "lm_head.weight"):
                    continue
                new = name_map.get_name(name, try_suffixes=(".weight", ".bias"))
                if new is None:
                    raise ExportError(f"{file}: tensor {name!r} has no GGUF name for architecture {hp.arch}")
                plan.append((name, file, new))
    if hp.tied and hp.spec.needs_output:
        plan += [(name, file, "output.weight") for name, file, new in plan if new == "token_embd.weight"]
    return plan


def _target_type(name: str, shape: tuple[int, ...], outtype: str):
    """GGML type per tensor: 1-D (norms, biases) stay F32; Q8_0 needs rows divisible by 32."""
    import gguf

    T = gguf.GGMLQuantizationType
    if len(shape) == 1 or outtype == "f32":
        return T.F32
    if outtype == "q8_0":
        return T.Q8_0 if shape[-1] % gguf.GGML_QUANT_SIZES[T.Q8_0][0] == 0 else T.F16
    return {"f16": T.F16, "bf16": T.BF16}[outtype]


def _encode(arr: np.ndarray, qtype) -> np.ndarray:
    import gguf

    T = gguf.GGMLQuantizationType
    if qtype == T.F32:
        return arr.astype(np.float32)
    if qtype == T.F16:
        return arr.astype(np.float16)
    return gguf.quants.quantize(arr.astype(np.float32), qtype)


def _load_tensor(file: Path, name: str, hp: HParams) -> np.ndarray:
    from safetensors import safe_open

    with safe_open(file, framework="pt") as f:
        arr = f.get_tensor(name).float().numpy()
    if hp.permute_qk and name.endswith(("q_proj.weight", "q_proj.bias")):
        arr = permute_rotary(arr, hp.n_head)
    elif hp.permute_qk and name.endswith(("k_proj.weight", "k_proj.bias")):
        arr = permute_rotary(arr, hp.n_head_kv)
    return arr


def _add_hparams(w, hp: HParams) -> None:
    import gguf

    w.add_context_length(hp.n_ctx)
    w.add_embedding_length(hp.n_embd)
    w.add_block_count(hp.n_layer)
    w.add_feed_forward_length(hp.n_ff)
    w.add_head_count(hp.n_head)
    w.add_head_count_kv(hp.n_head_kv)
    w.add_key_length(hp.head_dim)
    w.add_value_length(hp.head_dim)
    w.add_rope_dimension_count(hp.rope_dim)
    w.add_rope_freq_base(hp.rope_theta)
    if hp.spec.layer_norm:
        w.add_layer_norm_eps(hp.norm_eps)
    else:
        w.add_layer_norm_rms_eps(hp.norm_eps)
    w.add_vocab_size(hp.n_vocab)
    if hp.rope["rope_type"] == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(hp.rope["factor"]))


FILE_TYPES = {"f32": "ALL_F32", "f16": "MOSTLY_F16", "bf16": "MOSTLY_BF16", "q8_0": "MOSTLY_Q8_0"}


def _add_metadata(w, model_dir: Path, outtype: str, prov: Provenance) -> None:
    import gguf

    w.add_name(model_dir.name if prov.run_id is None else f"medtune-{prov.run_id}")
    w.add_file_type(int(gguf.LlamaFileType[FILE_TYPES[outtype]]))
    if outtype in ("q8_0",):
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_base_model_count(1)
    w.add_base_model_name(0, prov.base_model)
    w.add_description("Fine-tuned with medtune. " + _disclaimer())
    for key, value in (("base_model", prov.base_model), ("run_id", prov.run_id),
                       ("data_manifest_sha256", prov.data_manifest_sha256), ("version", prov.medtune_version),
                       ("reasoning_format", prov.reasoning_format), ("adapter_sha256", prov.adapter_sha256),
                       ("system_prompt", prov.system_prompt)):  # `medtune serve` asks the GGUF with it
        if value:
            w.add_string(f"medtune.{key}", str(value))


def _disclaimer() -> str:
    from .. import DISCLAIMER

    return DISCLAIMER


def convert_hf_to_gguf(model_dir: str | Path, out_path: str | Path, outtype: str = "f16",
                       provenance: Provenance | None = None) -> dict[str, Any]:
    """Write ``out_path`` (GGUF v3) from an HF folder; return a summary (types, tokenizer, sizes).

    ``outtype``: f32, f16, bf16 or q8_0 (the gguf package's own quantizer; K-quants are
    made from the F16 file by ``quantize.quantize_gguf``).
    """
    import gguf

    model_dir, out_path = Path(model_dir), Path(out_path)
    if outtype not in OUTTYPES:
        raise ExportError(f"outtype {outtype!r}: choose one of {', '.join(OUTTYPES)} (K-quants go through llama.cpp)")
    hp = read_hparams(model_dir)
    plan = _plan_tensors(model_dir, hp)
    writer = gguf.GGUFWriter(out_path.with_name(f".{out_path.name}.partial"), hp.arch)
    _add_hparams(writer, hp)
    _add_metadata(writer, model_dir, outtype, provenance or Provenance())
    vocab = write_vocab(writer, model_dir, hp.n_vocab)
    extra: list[tuple[str, np.ndarray]] = []
    if hp.rope["rope_type"] == "llama3":
        extra.append(("rope_freqs.weight", llama3_rope_factors(hp)))
    types: dict[str, str] = {}
    from safetensors import safe_open

    for name, file, new in plan:
        with safe_open(file, framework="pt") as f:
            shape = tuple(f.get_slice(name).get_shape())
        qtype = _target_type(new, shape, outtype)
        types[new] = qtype.name
        nbytes = int(np.prod(gguf.quant_shape_to_byte_shape(shape, qtype)))
        writer.add_tensor_info(new, shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
    for new, arr in extra:
        types[new] = "F32"
        writer.add_tensor_info(new, arr.shape, arr.dtype, arr.nbytes)
    _write_streaming(writer, out_path, hp, plan, types, extra)
    counts: dict[str, int] = {}
    for t in types.values():
        counts[t] = counts.get(t, 0) + 1
    return {"path": str(out_path), "outtype": outtype, "arch": hp.arch, "bytes": out_path.stat().st_size,
            "tensor_types": counts, "tokenizer": vocab}


def _write_streaming(writer, out_path: Path, hp: HParams, plan, types: dict[str, str], extra) -> None:
    """Header, metadata and tensor table first, then each tensor converted and written in turn.

    Written to a hidden sibling and renamed on success, so a crash never leaves a
    truncated .gguf that llama.cpp would half-load.
    """
    import os

    import gguf

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = writer.path
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for name, file, new in plan:
            qtype = gguf.GGMLQuantizationType[types[new]]
            writer.write_tensor_data(_encode(_load_tensor(file, name, hp), qtype))
        for _, arr in extra:
            writer.write_tensor_data(arr)
        writer.close()
        os.replace(tmp, out_path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
