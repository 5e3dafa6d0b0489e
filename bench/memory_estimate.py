"""Estimator vs measured peak memory of real LoRA steps on the embedded SmolLM2 (CPU) or a GPU.

    .venv/bin/python bench/memory_estimate.py [--device cpu|cuda] [--model DIR]
"""

from __future__ import annotations

import argparse

from medtune.models.embedded import materialize_embedded
from medtune.models.memory import GIB, arch_from_hf_config, estimate_training_memory
from medtune.models.memprobe import measure_lora_step

CONFIGS = [(256, 2, False), (512, 2, False), (512, 4, False), (1024, 2, False), (512, 4, True)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default=None)
    a = ap.parse_args()
    model_dir = a.model or str(materialize_embedded())
    arch = arch_from_hf_config(model_dir)
    print("| seq | batch | grad ckpt | estimate GiB | measured GiB | ratio |\n|---|---|---|---|---|---|")
    for seq, batch, ckpt in CONFIGS:
        m = measure_lora_step(model_dir, seq_len=seq, batch=batch, grad_ckpt=ckpt, device=a.device)
        measured = m.get("cuda_max_allocated_bytes", m["peak_increase_bytes"])
        est = estimate_training_memory(arch, method="lora", seq_len=seq, batch=batch, grad_ckpt=ckpt, lora_r=16,
                                       targets="all-linear", dtype="fp32", device="cpu").total
        print(f"| {seq} | {batch} | {'yes' if ckpt else 'no'} | {est / GIB:.2f} | {measured / GIB:.2f} | {est / measured:.2f} |", flush=True)


if __name__ == "__main__":
    main()
