"""`medtune recommend`: which base model and settings fit a memory budget."""

from __future__ import annotations

import typer
from rich.table import Table

from .common import console, fail
from .options import field_option, or_default


def recommend_cmd(
    vram: float = typer.Option(..., "--vram", help="Memory budget in GiB (GPU memory, or RAM for CPU training)."),
    model: str = typer.Option(None, "--model", help="Estimate for this preset or local HF folder only."),
    method: str = field_option("train.method", "--method", apply=False, hint=" Estimated here: lora, qlora or full."),
    seq_len: int = typer.Option(1024, "--seq-len", help="Tokens per sequence."),
    batch: int = typer.Option(1, "--batch", help="Micro-batch size."),
    grad_ckpt: bool = typer.Option(False, "--grad-ckpt", help="Gradient checkpointing."),
    optimizer: str = field_option("train.optimizer", "--optimizer", apply=False),
    lora_r: int = field_option("train.lora.r", "--lora-r", apply=False),
    device: str = typer.Option("cuda", "--device", help="cuda (bf16) or cpu (fp32)."),
) -> None:
    """Estimate peak training memory from the model's real config and recommend what fits."""
    from ..models.memory import GIB, arch_for, estimate_training_memory, recommend

    method, optimizer = or_default(method, "train.method"), or_default(optimizer, "train.optimizer")
    lora_r = or_default(lora_r, "train.lora.r")
    if method not in ("lora", "qlora", "full"):
        fail(f"--method must be lora, qlora or full (got {method!r})")
    if model:
        try:
            arch, preset = arch_for(model)
        except ValueError as e:
            fail(str(e))
        est = estimate_training_memory(arch, method=method, seq_len=seq_len, batch=batch, grad_ckpt=grad_ckpt,
                                       optimizer=optimizer, lora_r=lora_r, preset=preset, device=device,
                                       dtype="bf16" if device == "cuda" else "fp32")
        table = Table("component", "GiB")
        for k, v in est.as_gib().items():
            table.add_row(k, f"{v:.2f}")
        console.print(table)
        verdict = "fits" if est.total / GIB <= vram * 0.9 else "does NOT fit"
        console.print(f"{model} {method} seq {seq_len} x batch {batch}: {est.total / GIB:.2f} GiB -> {verdict} in {vram} GiB "
                      f"(trainable params {est.trainable_params:,})")
        return
    recs = recommend(vram, seq_len=seq_len, device=device, lora_r=lora_r)
    if not recs:
        fail(f"nothing fits in {vram} GiB at seq_len {seq_len}; try a shorter --seq-len")
    table = Table("preset", "method", "batch", "grad ckpt", "optimizer", "est. GiB")
    for r in recs:
        table.add_row(r.preset, r.method, str(r.batch), "yes" if r.grad_ckpt else "no", r.optimizer, f"{r.estimate_gib:.2f}")
    console.print(table)
    console.print(f"Largest that fits: [bold]{recs[0].preset}[/bold] with {recs[0].method} (batch {recs[0].batch}).")


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend_cmd)
