"""Peak training-memory estimator, computed from a model's real dimensions.

Two models of a training step, because they allocate very differently:

* ``trainer="medtune"`` (default): what ``medtune train`` allocates. Logits exist only at the
  positions that carry loss (``loss_share`` of the tokens; with liger-kernel on CUDA, only a
  chunk at a time); with packing a CPU runs one ``seq_len`` row per forward (a GPU stacks
  ``batch`` rows); a frozen base sits in the compute dtype (bf16 on CUDA and on CPUs with native
  bf16; QLoRA's 4-bit layers with embeddings and LM head in bf16, norms in fp32), LoRA adapters
  and optimizer states in fp32 (8-bit AdamW: 2 B/param).
* ``trainer="plain"``: the seeds' plain loop (transformers Trainer / a hand loop): full-vocabulary
  logits for every token of a padded ``batch x seq_len`` batch.

Peak = weights + trainable params + gradients + optimizer states + saved activations + logits
(+ CUDA context). Parameters and module names follow each architecture's layer layout (``LAYOUTS``:
Llama/Mistral, Qwen2's q/k/v biases, Qwen3's q/k norms, phi's parallel block with a plain GELU MLP,
LayerNorms and biases; another architecture is estimated as a Llama block and says so).
Activations are counted per token and layer from the Llama block (Korthikanti
et al. 2022 do the same for GPT blocks): what autograd saves for backward, SDPA keeping O(s) per
head; with gradient checkpointing only each layer's input plus one layer's activations during
recomputation. 4-bit nf4 with double quantization costs ~4.127 bits per weight (Dettmers et al.
2023). Checked against measured peaks of ``medtune train`` (bench/memory_estimate.py,
docs/benchmarks.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from .registry import ArchConfig, Preset, load_presets

GIB = 2**30
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class Layout:
    """One decoder layer as transformers' native implementation builds it (module names as PEFT sees them)."""

    attention: tuple[str, str, str, str]  # q, k, v, output projection
    mlp: tuple[str, ...]  # gated: gate, up, down (SiLU(gate) * up); plain: fc1, fc2 (GELU between)
    norm: str = "rms"  # rms: a weight of h; layer: weight and bias (2h), fp32 under autocast either way
    norms_per_layer: int = 2  # pre-attention and pre-MLP; 1 for a parallel attention/MLP block (phi)
    biased: tuple[str, ...] = ()  # linears with a bias
    qk_norm: bool = False  # per-head RMSNorms on q and k (qwen3)
    head_bias: bool = False  # the LM head has a bias (phi)

    @property
    def gated(self) -> bool:
        return len(self.mlp) == 3

    @property
    def linears(self) -> tuple[str, ...]:
        return self.attention + self.mlp


LLAMA = Layout(("q_proj", "k_proj", "v_proj", "o_proj"), ("gate_proj", "up_proj", "down_proj"))
LAYOUTS = {
    "llama": LLAMA,
    "mistral": LLAMA,
    "qwen2": Layout(LLAMA.attention, LLAMA.mlp, biased=("q_proj", "k_proj", "v_proj")),
    "qwen3": Layout(LLAMA.attention, LLAMA.mlp, qk_norm=True),
    "phi": Layout(("q_proj", "k_proj", "v_proj", "dense"), ("fc1", "fc2"), norm="layer", norms_per_layer=1,
                  biased=("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"), head_bias=True),
}


def layout_of(c: ArchConfig) -> Layout:
    """The layer layout of ``c``'s architecture; one without an entry is estimated as a Llama block
    (``known_layout`` says which)."""
    return LAYOUTS.get(c.architecture, LLAMA)


def known_layout(c: ArchConfig) -> bool:
    return c.architecture in LAYOUTS


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
    """(d_in, d_out) of each linear in one decoder layer, by the names of its architecture's layout."""
    lay = layout_of(c)
    q_out = c.num_attention_heads * c.head_dim
    kv_out = c.num_key_value_heads * c.head_dim
    h, i = c.hidden_size, c.intermediate_size
    q, k, v, o = lay.attention
    shapes = {q: (h, q_out), k: (h, kv_out), v: (h, kv_out), o: (q_out, h)}
    *into, down = lay.mlp
    shapes.update({name: (h, i) for name in into})
    shapes[down] = (i, h)
    return shapes


def count_params(c: ArchConfig) -> tuple[int, int, int]:
    """(linear params in layers, embedding + head params, norm params); biases count with their linear
    (the head's with the embeddings), qwen3's per-head q/k norms with the norms."""
    lay = layout_of(c)
    shapes = linear_shapes(c)
    per_layer = sum(a * b for a, b in shapes.values()) + sum(shapes[n][1] for n in lay.biased)
    emb = c.vocab_size * c.hidden_size * (1 if c.tie_word_embeddings else 2) + (c.vocab_size if lay.head_bias else 0)
    norm = c.hidden_size * (2 if lay.norm == "layer" else 1)
    per_layer_norms = lay.norms_per_layer * norm + (2 * c.head_dim if lay.qk_norm else 0)
    norms = c.num_hidden_layers * per_layer_norms + norm
    return per_layer * c.num_hidden_layers, emb, norms


def resolve_targets(targets: list[str] | str, preset: Preset | None, c: ArchConfig) -> list[str]:
    """The layer linears LoRA adapts, as ``train.setup.resolve_target_modules`` picks them (aliases such as
    phi-2's ``Wqkv`` resolved; names the layout lacks left out)."""
    names = layout_of(c).linears
    if targets == "all-linear":
        return list(names)
    if targets == "preset":
        targets = preset.lora_target_modules if preset else list(names)
    out: list[str] = []
    for t in targets:
        out.extend(preset.target_module_aliases.get(t, [t]) if preset else [t])
    return [t for t in names if t in out]


def activation_bytes_per_token_layer(c: ArchConfig, act_bytes: int, lora_inputs: int, lora_dropout: bool) -> int:
    """Elements autograd keeps per token in one decoder layer, times bytes.

    Counted from the Llama block: two RMSNorms (each keeps its fp32 input, the rsqrt-scaled
    output and the weighted output: 3h, always fp32), q/k/v outputs and their RoPE'd copies
    (2(q + 2kv)), the SDPA output and its logsumexp (q + heads), the MLP's gate, up, SiLU(gate)
    and product (4i; a plain MLP keeps fc1's output and its GELU, 2i). LoRA dropout stores one
    dropped copy of each adapted module's input. A parallel block (phi) has one norm.
    """
    h = c.hidden_size
    q = c.num_attention_heads * c.head_dim
    kv = c.num_key_value_heads * c.head_dim
    elems = 2 * (q + 2 * kv) + q + c.num_attention_heads + _mlp_elems(c) + h  # + residual stream copy
    norm_bytes = layout_of(c).norms_per_layer * 3 * h * 4
    dropout = lora_inputs if lora_dropout else 0
    return (elems + dropout) * act_bytes + norm_bytes


def medtune_activation_bytes(c: ArchConfig, act_bytes: int, targets: list[str], lora_dropout: bool) -> int:
    """Bytes autograd keeps per token in one decoder layer under medtune's trainer (counted, not fitted).

    In hidden-size units h (intermediate i, key/value width kv): each RMSNorm keeps its fp32 input
    (2h in half-precision units); the attention input h; q, k, v after RoPE and the SDPA output
    with its contiguous copy for o_proj (3h + 2kv); the MLP input h, gate, SiLU(gate), up and
    their product (4i; a plain MLP: fc1's output and its GELU, 2i). Each LoRA-adapted module keeps
    its dropped input (act bytes) and, with dropout, a boolean mask (1 byte). The logsumexp of
    SDPA is fp32 per head. A parallel block (phi) has one norm, whose output feeds both the
    attention and the MLP.
    """
    h = c.hidden_size
    kv = c.num_key_value_heads * c.head_dim
    shapes = linear_shapes(c)
    norms = layout_of(c).norms_per_layer
    elems = norms * (2 * h) + h + (3 * h + 2 * kv) + (h if norms == 2 else 0) + _mlp_elems(c)
    lora_in = sum(shapes[n][0] for n in targets)
    return elems * act_bytes + lora_in * (act_bytes + (1 if lora_dropout else 0)) + 4 * c.num_attention_heads


def _mlp_elems(c: ArchConfig) -> int:
    return (4 if layout_of(c).gated else 2) * c.intermediate_size


def _liger_chunk_rows(tokens: int, c: ArchConfig) -> int:
    """Rows of logits liger-kernel's fused linear cross-entropy materializes at once (its own chunking rule)."""
    per = math.ceil(tokens / math.ceil(c.vocab_size / c.hidden_size))
    return min(tokens, 2 ** math.ceil(math.log2(max(per, 1))))


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
    trainer: str = "medtune",
    packing: bool = True,
    loss_share: float = 1.0,
    fused_ce: bool = False,
) -> MemoryEstimate:
    """Estimate peak memory (bytes) of one training step; see the module docstring.

    ``dtype`` is the compute precision (fp32 | bf16 | fp16). For ``trainer="medtune"``:
    ``packing`` (rows of ``seq_len`` tokens), ``loss_share`` (share of tokens that carry loss; 1.0
    is the worst case) and ``fused_ce`` (liger-kernel installed, CUDA).
    """
    if trainer == "plain":
        return _plain_estimate(c, method=method, seq_len=seq_len, batch=batch, grad_ckpt=grad_ckpt, optimizer=optimizer,
                               lora_r=lora_r, targets=targets, lora_dropout=lora_dropout, dtype=dtype, preset=preset,
                               device=device)
    half = dtype != "fp32"
    ab = BYTES[dtype]
    layer_linear, emb, norms = count_params(c)
    names = resolve_targets(targets, preset, c) if method != "full" else []
    shapes = linear_shapes(c)
    if method == "qlora":  # 4-bit layers; embeddings and head in the compute dtype, norms fp32 (train/setup.py)
        weights = layer_linear * 4.127 / 8 + emb * ab + norms * 4
    elif method == "full":  # fp32 masters; autocast caches a half copy of every weight during the step
        weights = (layer_linear + emb + norms) * (4 + (2 if half else 0))
    else:  # a frozen base sits in the compute dtype
        weights = (layer_linear + emb + norms) * ab
    if method == "full":
        trainable_params = layer_linear + emb + norms
        trainable = 0.0
    else:
        trainable_params = c.num_hidden_layers * sum(lora_r * (shapes[n][0] + shapes[n][1]) for n in names)
        trainable = trainable_params * (4.0 + (2.0 if half else 0.0))  # fp32 adapters + autocast's half copy
    gradients = trainable_params * 4.0
    opt = _optimizer_bytes(optimizer, method, trainable_params)
    tokens = seq_len if (packing and device == "cpu") else batch * seq_len  # tokens in one forward pass
    per_layer = medtune_activation_bytes(c, ab, names, lora_dropout > 0)
    if grad_ckpt:
        activations = tokens * (c.num_hidden_layers * c.hidden_size * ab + per_layer)
    else:
        activations = tokens * c.num_hidden_layers * per_layer
    loss_tokens = max(1, round(tokens * loss_share))
    if fused_ce:
        logits = _liger_chunk_rows(loss_tokens, c) * c.vocab_size * 6.0 + loss_tokens * c.hidden_size * 4.0
    else:  # logits (half), their fp32 log-softmax and its gradient, at loss positions only
        logits = loss_tokens * c.vocab_size * (10.0 if half else 12.0)
    overhead = 0.5 * GIB if device == "cuda" else 0.15 * GIB  # CUDA context + allocator slack; CPU runtime
    return MemoryEstimate(weights, trainable, gradients, opt, activations, logits, overhead, int(trainable_params))


def _optimizer_bytes(optimizer: str, method: str, params: int) -> float:
    """AdamW: 2 fp32 moments (8 B/param); 8-bit AdamW 2 B/param; Adafactor factored second moments."""
    if optimizer == "adamw_8bit":
        return params * 2.0
    if optimizer == "adafactor":
        return params * 4.0 * (0.05 if method == "full" else 0.5)
    return params * 8.0


def _plain_estimate(c: ArchConfig, *, method: str, seq_len: int, batch: int, grad_ckpt: bool, optimizer: str,
                    lora_r: int, targets: list[str] | str, lora_dropout: float, dtype: str, preset: Preset | None,
                    device: str) -> MemoryEstimate:
    """The plain loop: weights in ``dtype``, full-vocabulary fp32 logits for every token of the padded batch."""
    wb = BYTES[dtype]
    layer_linear, emb, norms = count_params(c)
    if method == "qlora":
        weights = layer_linear * 4.127 / 8 + (emb + norms) * wb
    else:
        weights = (layer_linear + emb + norms) * wb
    shapes = linear_shapes(c)
    names = resolve_targets(targets, preset, c)
    if method == "full":
        trainable_params = layer_linear + emb + norms
        trainable = 0.0  # the weights are the trainable params
        grad_b = BYTES[dtype] if dtype == "fp32" else 4  # mixed precision keeps fp32 master grads
    else:
        trainable_params = c.num_hidden_layers * sum(lora_r * (shapes[n][0] + shapes[n][1]) for n in names)
        trainable = trainable_params * 4.0
        grad_b = 4
    gradients = trainable_params * grad_b
    opt = _optimizer_bytes(optimizer, method, trainable_params)
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
        num_key_value_heads=cfg.get("num_key_value_heads") or heads,
        head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
        intermediate_size=cfg["intermediate_size"], vocab_size=cfg["vocab_size"], architecture=cfg.get("model_type") or "unknown",
        tie_word_embeddings=cfg.get("tie_word_embeddings", False),
    )


def arch_for(spec: str) -> tuple[ArchConfig, Preset | None]:
    """Dimensions and preset of a model spec, resolved as training resolves it (``models.source.resolve_source``):
    a local folder's own config.json (an existing folder wins over a preset of the same name), else the preset's."""
    from .source import ModelLoadError, resolve_source

    try:
        source = resolve_source(spec)
    except ModelLoadError as e:
        raise ValueError(str(e)) from None
    if source.kind == "local_dir" and (Path(source.location) / "config.json").is_file():
        return arch_from_hf_config(source.location), source.preset
    if source.preset is not None:
        return source.preset.config, source.preset
    raise ValueError(f"unknown model {spec!r}: use a preset name (`medtune models list`), a preset's HF id, or a local HF folder")


HEADROOM = 0.9  # a plan must fit in 90% of the budget (fragmentation, other processes)


def fits(est: MemoryEstimate, budget_gib: float) -> bool:
    return est.total / GIB <= budget_gib * HEADROOM


def settings_that_fit(c: ArchConfig, budget_gib: float, settings: dict, preset: Preset | None = None) -> list[tuple[str, float]]:
    """Single changes to ``settings`` (``estimate_training_memory`` keywords) under which the step fits.

    Tried one at a time, in the order a user would reach for them: gradient checkpointing,
    liger-kernel's fused cross-entropy (CUDA), 8-bit AdamW (CUDA), QLoRA (CUDA), batch 1, packing
    (CPU: one row per forward), then halving ``seq_len`` down to 256. Returns (what to set, GiB).
    """
    cuda = settings.get("device") == "cuda"
    changes: list[tuple[str, dict]] = [("--grad-ckpt (gradient checkpointing)", {"grad_ckpt": True})]
    if cuda:
        changes += [("pip install liger-kernel (fused linear cross-entropy: no logits tensor)", {"fused_ce": True}),
                    ("--optimizer adamw_8bit", {"optimizer": "adamw_8bit"}),
                    ("--method qlora (4-bit base)", {"method": "qlora"})]
    if settings.get("batch", 1) > 1:
        changes.append(("--batch 1 (and more gradient accumulation)", {"batch": 1}))
    if not cuda and not settings.get("packing", True):
        changes.append(("train.packing=true (one row per forward on a CPU)", {"packing": True}))
    seq = settings.get("seq_len", 512) // 2
    while seq >= 256:
        changes.append((f"--seq-len {seq}", {"seq_len": seq}))
        seq //= 2
    out = []
    for label, change in changes:
        if all(settings.get(k) == v for k, v in change.items()):
            continue
        est = estimate_training_memory(c, **{**settings, **change, "preset": preset})
        if fits(est, budget_gib):
            out.append((label, round(est.total / GIB, 2)))
    return out


@dataclass
class Recommendation:
    preset: str
    method: str
    seq_len: int
    batch: int
    grad_ckpt: bool
    optimizer: str
    estimate_gib: float


def recommend(vram_gib: float, *, seq_len: int = 1024, device: str = "cuda", lora_r: int = 16,
              method: str | None = None) -> list[Recommendation]:
    """Largest presets (by parameters) with the first setting that fits, cheapest-memory last; ``method``: only that
    method's settings (full fine-tuning is tried only when asked for)."""
    ladder = [("lora", False, 4, "adamw"), ("lora", True, 2, "adamw"), ("qlora", False, 2, "adamw_8bit"),
              ("qlora", True, 1, "adamw_8bit")]
    if method == "full":
        ladder = [("full", False, 4, "adamw"), ("full", True, 2, "adamw"), ("full", True, 1, "adamw")]
    elif method is not None:
        ladder = [s for s in ladder if s[0] == method]
    if device != "cuda":
        ladder = [s for s in ladder if s[0] != "qlora"]
    from .precision import auto_precision

    dtype = auto_precision(device)[0] if device != "cuda" else "bf16"
    out = []
    for p in sorted(load_presets().values(), key=lambda p: -p.params_b):
        for method, ckpt, batch, opt in ladder:
            est = estimate_training_memory(p.config, method=method, seq_len=seq_len, batch=batch, grad_ckpt=ckpt,
                                           optimizer=opt if device == "cuda" else "adamw", lora_r=lora_r,
                                           dtype=dtype, preset=p, device=device)
            if fits(est, vram_gib):
                out.append(Recommendation(p.name, method, seq_len, batch, ckpt, opt, round(est.total / GIB, 2)))
                break
    return out
