"""Peak training-memory estimator, computed from a model's real dimensions.

Replaces the seed guide's static VRAM table. Peak memory during a training step is

    weights + trainable params + gradients + optimizer states + saved activations + logits

* weights: params x bytes(dtype); 4-bit nf4 with double quantization costs ~4.127 bits per
  quantized weight (QLoRA, Dettmers et al. 2023, sec. 2); embeddings, norms and the LM head
  stay in the compute dtype.
* LoRA adds r x (d_in + d_out) params per adapted matrix, kept in fp32 with fp32 grads.
* optimizer: AdamW keeps 2 fp32 moments (8 B/param), 8-bit AdamW 2 B/param, Adafactor
  factored second moments (~ (rows + cols) x 4 B per matrix).
* activations: the tensors autograd saves for backward, counted per token and layer for the
  Llama-style block (Korthikanti et al. 2022 give the same accounting for GPT blocks); SDPA
  attention saves O(s) per head rather than the s x s score matrix. With gradient checkpointing
  only each layer's input is kept, plus one layer's activations during recomputation.
* logits: b x s x vocab, held in fp32 for the loss: the logits, their log-softmax and the
  gradient of the logits are alive together at the start of backward.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .registry import ArchConfig, Preset, get_preset, load_presets

GIB = 2**30
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class MemoryEstimate:
    weights: float
    trainable: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    overhead: float
    trainable_params: int

    @property
    def total(self) -> float:
        return self.weights + self.trainable + self.gradients + self.optimizer + self.activations + self.logits + self.overhead

    def as_gib(self) -> dict[str, float]:
        d = {k: round(v / GIB, 3) for k, v in asdict(self).items() if k != "trainable_params"}
        d["total"] = round(self.total / GIB, 3)
        return d


def linear_shapes(c: ArchConfig) -> dict[str, tuple[int, int]]:
    """(d_in, d_out) of each linear in one Llama/Qwen-style decoder layer."""
    q_out = c.num_attention_heads * c.head_dim
    kv_out = c.num_key_value_heads * c.head_dim
    h, i = c.hidden_size, c.intermediate_size
    return {
        "q_proj": (h, q_out), "k_proj": (h, kv_out), "v_proj": (h, kv_out), "o_proj": (q_out, h),
        "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h),
    }


def count_params(c: ArchConfig) -> tuple[int, int, int]:
    """(linear params in layers, embedding + head params, norm params)."""
    per_layer = sum(a * b for a, b in linear_shapes(c).values())
    emb = c.vocab_size * c.hidden_size * (1 if c.tie_word_embeddings else 2)
    norms = c.num_hidden_layers * 2 * c.hidden_size + c.hidden_size
    return per_layer * c.num_hidden_layers, emb, norms


def resolve_targets(targets: list[str] | str, preset: Preset | None) -> list[str]:
    if targets == "all-linear":
        return list(LINEAR_NAMES)
    if targets == "preset":
        targets = preset.lora_target_modules if preset else list(LINEAR_NAMES)
    out: list[str] = []
    for t in targets:
        out.extend(preset.target_module_aliases.get(t, [t]) if preset else [t])
    return [t for t in out if t in LINEAR_NAMES]


def activation_bytes_per_token_layer(c: ArchConfig, act_bytes: int, lora_inputs: int, lora_dropout: bool) -> int:
    """Elements autograd keeps per token in one decoder layer, times bytes.

    Counted from the Llama block: two RMSNorms (each keeps its fp32 input, the rsqrt-scaled
    output and the weighted output: 3h, always fp32), q/k/v outputs and their RoPE'd copies
    (2(q + 2kv)), the SDPA output and its logsumexp (q + heads), the MLP's gate, up, SiLU(gate)
    and product (4i). LoRA dropout stores one dropped copy of each adapted module's input.
    """
    h, i = c.hidden_size, c.intermediate_size
    q = c.num_attention_heads * c.head_dim
    kv = c.num_key_value_heads * c.head_dim
    elems = 2 * (q + 2 * kv) + q + c.num_attention_heads + 4 * i + h  # + residual stream copy
    norm_bytes = 2 * 3 * h * 4
    dropout = lora_inputs if lora_dropout else 0
    return (elems + dropout) * act_bytes + norm_bytes


def estimate_training_memory(
    c: ArchConfig,
    *,
    method: str = "lora",
    seq_len: int = 512,
    batch: int = 1,
    grad_ckpt: bool = False,
    optimizer: str = "adamw",
    lora_r: int = 16,
    targets: list[str] | str = "preset",
    lora_dropout: float = 0.05,
    dtype: str = "fp32",
    preset: Preset | None = None,
    device: str = "cpu",
) -> MemoryEstimate:
    """Estimate peak memory (bytes) of one training step; see the module docstring."""
    wb = BYTES[dtype]
    layer_linear, emb, norms = count_params(c)
    if method == "qlora":
        weights = layer_linear * 4.127 / 8 + (emb + norms) * wb
    else:
        weights = (layer_linear + emb + norms) * wb
    shapes = linear_shapes(c)
    names = resolve_targets(targets, preset)
    if method == "full":
        trainable_params = layer_linear + emb + norms
        trainable = 0.0  # the weights are the trainable params
        grad_b = BYTES[dtype] if dtype == "fp32" else 4  # mixed precision keeps fp32 master grads
    else:
        trainable_params = c.num_hidden_layers * sum(lora_r * (shapes[n][0] + shapes[n][1]) for n in names)
        trainable = trainable_params * 4.0
        grad_b = 4
    gradients = trainable_params * grad_b
    if optimizer == "adamw_8bit":
        opt = trainable_params * 2.0
    elif optimizer == "adafactor":
        opt = trainable_params * 4.0 * 0.05 if method == "full" else trainable_params * 4.0 * 0.5
    else:
        opt = trainable_params * 8.0
    tokens = batch * seq_len
    lora_inputs = sum(shapes[n][0] for n in names) if method != "full" else 0
    per_layer = activation_bytes_per_token_layer(c, wb, lora_inputs, lora_dropout > 0 and method != "full")
    if grad_ckpt:
        activations = tokens * (c.num_hidden_layers * c.hidden_size * wb + per_layer)
    else:
        activations = tokens * c.num_hidden_layers * per_layer
    logits = tokens * c.vocab_size * 4 * 3
    overhead = 0.5 * GIB if device == "cuda" else 0.0  # CUDA context + allocator slack
    return MemoryEstimate(weights, trainable, gradients, opt, activations, logits, overhead, int(trainable_params))


def arch_from_hf_config(path: str | Path) -> ArchConfig:
    """Read the dimensions from a local HF folder's config.json."""
    cfg = json.loads((Path(path) / "config.json").read_text())
    heads = cfg["num_attention_heads"]
    return ArchConfig(
        hidden_size=cfg["hidden_size"], num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=heads,
        num_key_value_heads=cfg.get("num_key_value_heads", heads),
        head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
        intermediate_size=cfg["intermediate_size"], vocab_size=cfg["vocab_size"],
        tie_word_embeddings=cfg.get("tie_word_embeddings", False),
    )


def arch_for(spec: str) -> tuple[ArchConfig, Preset | None]:
    preset = get_preset(spec)
    if preset:
        return preset.config, preset
    if (Path(spec) / "config.json").is_file():
        return arch_from_hf_config(spec), None
    raise ValueError(f"unknown model {spec!r}: use a preset name (`medtune models list`) or a local HF folder")


@dataclass
class Recommendation:
    preset: str
    method: str
    seq_len: int
    batch: int
    grad_ckpt: bool
    optimizer: str
    estimate_gib: float


def recommend(vram_gib: float, *, seq_len: int = 1024, device: str = "cuda", lora_r: int = 16) -> list[Recommendation]:
    """Largest presets (by parameters) with the first setting that fits, cheapest-memory last."""
    ladder = [("lora", False, 4, "adamw"), ("lora", True, 2, "adamw"), ("qlora", False, 2, "adamw_8bit"),
              ("qlora", True, 1, "adamw_8bit")]
    if device != "cuda":
        ladder = [s for s in ladder if s[0] != "qlora"]
    dtype = "bf16" if device == "cuda" else "fp32"
    out = []
    for p in sorted(load_presets().values(), key=lambda p: -p.params_b):
        for method, ckpt, batch, opt in ladder:
            est = estimate_training_memory(p.config, method=method, seq_len=seq_len, batch=batch, grad_ckpt=ckpt,
                                           optimizer=opt if device == "cuda" else "adamw", lora_r=lora_r,
                                           dtype=dtype, preset=p, device=device)
            if est.total / GIB <= vram_gib * 0.9:  # keep 10% headroom for fragmentation
                out.append(Recommendation(p.name, method, seq_len, batch, ckpt, opt, round(est.total / GIB, 2)))
                break
    return out
