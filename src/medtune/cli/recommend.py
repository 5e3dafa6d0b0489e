"""`medtune recommend`: which base model and settings fit a memory budget."""

from __future__ import annotations

import typing

import typer
from rich.table import Table

from ..config.sections.train import TrainSection
from .common import console, fail
from .options import field_option, or_default


def recommend_cmd(
    vram: float = typer.Option(..., "--vram", help="Memory budget in GiB (GPU memory, or RAM for CPU training)."),
    model: str = typer.Option(None, "--model", help="Estimate for this preset or local HF folder only."),
    method: str = field_option("train.method", "--method", apply=False, hint=" Estimated here: lora, qlora or full."),
    seq_len: int = typer.Option(1024, "--seq-len", help="Tokens per sequence (data.max_length)."),
    batch: int = typer.Option(1, "--batch", help="Micro-batch size (train.batch_size)."),
    grad_ckpt: bool = typer.Option(False, "--grad-ckpt", help="Gradient checkpointing."),
    optimizer: str = field_option("train.optimizer", "--optimizer", apply=False),
    lora_r: int = field_option("train.lora.r", "--lora-r", apply=False),
    device: str = typer.Option("cuda", "--device", help="cuda (bf16) or cpu (this machine's `auto` precision)."),
    packing: bool = field_option("train.packing", "--packing/--no-packing", apply=False, hint=" The R1-8B seed recipe: off."),
    loss_share: float = typer.Option(1.0, "--loss-share", min=0.0, max=1.0,
                                     help="Share of tokens that carry loss (1.0 = worst case; assistant-only SFT is lower)."),
    fused_ce: bool = typer.Option(None, "--fused-ce/--no-fused-ce",
                                  help="liger-kernel's fused cross-entropy (default: on CUDA when liger-kernel is installed)."),
    trainer: str = typer.Option("medtune", "--trainer", help="medtune (what `medtune train` allocates) | plain (a plain loop with full logits)."),
) -> None:
    """Estimate peak training memory from the model's real config and recommend what fits."""
    from ..models.memory import (
        GIB,
        arch_for,
        estimate_training_memory,
        fits,
        known_layout,
        recommend,
        settings_that_fit,
    )
    from ..models.precision import auto_precision
    from ..train.forward import liger_available

    if not model:  # recommend() searches these itself, for every preset: a given value would be silently ignored
        searched = {"--batch": batch != 1, "--grad-ckpt": grad_ckpt,
                    "--optimizer": optimizer is not None, "--packing/--no-packing": packing is not None,
                    "--loss-share": loss_share != 1.0, "--fused-ce/--no-fused-ce": fused_ce is not None,
                    "--trainer": trainer != "medtune"}
        if given := [flag for flag, was_given in searched.items() if was_given]:
            fail(f"{', '.join(given)} apply with --model; without it, recommend tries batch sizes, gradient "
                 "checkpointing and optimizers for every preset itself (--method, --seq-len, --device and --lora-r apply)")
    if device not in ("cuda", "cpu"):
        fail(f"--device must be cuda or cpu (got {device!r})")
    asked_method = method  # without --model, no --method means every method
    method, optimizer = or_default(method, "train.method"), or_default(optimizer, "train.optimizer")
    if optimizer not in (choices := typing.get_args(TrainSection.model_fields["optimizer"].annotation)):
        fail(f"--optimizer must be one of {', '.join(choices)} (got {optimizer!r})")
    lora_r, packing = or_default(lora_r, "train.lora.r"), or_default(packing, "train.packing")
    if method not in ("lora", "qlora", "full"):
        fail(f"--method must be lora, qlora or full (got {method!r})")
    if trainer not in ("medtune", "plain"):
        fail(f"--trainer must be medtune or plain (got {trainer!r})")
    if not model:
        if device == "cpu" and asked_method == "qlora":
            fail("--method qlora needs CUDA (bitsandbytes 4-bit); on --device cpu use lora or full")
        recs = recommend(vram, seq_len=seq_len, device=device, lora_r=lora_r, method=asked_method)
        if not recs:
            fail(f"nothing fits in {vram} GiB at seq_len {seq_len}{f' with {asked_method}' if asked_method else ''}; "
                 "try a shorter --seq-len")
        table = Table("preset", "method", "batch", "grad ckpt", "optimizer", "est. GiB")
        for r in recs:
            table.add_row(r.preset, r.method, str(r.batch), "yes" if r.grad_ckpt else "no", r.optimizer, f"{r.estimate_gib:.2f}")
        console.print(table)
        console.print(f"Largest that fits: [bold]{recs[0].preset}[/bold] with {recs[0].method} (batch {recs[0].batch}).")
        return
    try:
        arch, preset = arch_for(model)
    except ValueError as e:
        fail(str(e))
    dtype = "bf16" if device == "cuda" else auto_precision("cpu")[0]
    settings = {"method": method, "seq_len": seq_len, "batch": batch, "grad_ckpt": grad_ckpt, "optimizer": optimizer,
                "lora_r": lora_r, "dtype": dtype, "device": device, "trainer": trainer, "packing": packing,
                "loss_share": loss_share,
                "fused_ce": (device == "cuda" and liger_available()) if fused_ce is None else fused_ce}
    est = estimate_training_memory(arch, preset=preset, **settings)
    table = Table("component", "GiB")
    for k, v in est.as_gib().items():
        table.add_row(k, f"{v:.2f}")
    console.print(table)
    ok = fits(est, vram)
    console.print(f"{model} {method} seq {seq_len} x batch {batch} ({trainer} trainer, {dtype}, "
                  f"{'fused CE' if settings['fused_ce'] else f'logits at {loss_share:.0%} of tokens'}): "
                  f"{est.total / GIB:.2f} GiB -> {'fits' if ok else 'does NOT fit'} in {vram} GiB (90% usable; "
                  f"trainable params {est.trainable_params:,})")
    if not known_layout(arch):
        console.print(f"[yellow]Architecture {arch.architecture!r} has no layer layout here: estimated as a Llama block "
                      "(q/k/v/o projections, gated MLP); its real modules may differ.[/yellow]")
    if not ok and trainer == "medtune":
        options = settings_that_fit(arch, vram, settings, preset)
        if options:
            console.print("It would fit with one change: " + "; ".join(f"{label} -> {gib:.2f} GiB" for label, gib in options))
        else:
            floor = est.weights / GIB
            console.print(f"No single setting makes it fit: the frozen weights alone take {floor:.2f} GiB. "
                          "Use a smaller base (`medtune recommend --vram N` without --model lists what fits).")


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend_cmd)
