"""Estimator vs measured peak memory of `medtune train` itself (fp32 and bf16), and of a plain loop.

    .venv/bin/python bench/memory_estimate.py                 # five `medtune train` configurations (CPU)
    .venv/bin/python bench/memory_estimate.py --plain         # the plain-loop model (full logits), as in issue 2
    python bench/memory_estimate.py --device cuda --model DIR # on a GPU: torch.cuda.max_memory_allocated

Each configuration trains the embedded SmolLM2-135M (LoRA r16 on all seven projections, dropout
0.05, AdamW) for two steps in a fresh subprocess (``models/memprobe.py``) on synthetic cases
(bench/train_throughput.py's length mix); without packing only cases of at least 85% of
``max_length`` are kept, so that every padded batch is as wide as the estimate assumes. The
estimate gets the configuration plus the data's share of loss-carrying tokens (a number
``medtune data``'s render audit reports) and is compared with the measured peak: RSS during
load + training minus RSS after imports, with ``MALLOC_MMAP_THRESHOLD_=131072`` so freed tensors
leave RSS (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from medtune.models.embedded import materialize_embedded
from medtune.models.memory import GIB, arch_from_hf_config, estimate_training_memory
from medtune.models.memprobe import measure_lora_step, measure_train_peak

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import TARGETS, make_records  # noqa: E402

# (precision, packing, max_length, batch, gradient checkpointing)
CONFIGS = [("fp32", True, 512, 2, False), ("bf16", True, 512, 2, False), ("bf16", False, 512, 4, True),
           ("bf16", False, 512, 4, False), ("bf16", True, 1024, 2, False)]
PLAIN = [(256, 2, False), (512, 2, False), (512, 4, False), (1024, 2, False), (512, 4, True)]


def records_for(work: Path, max_length: int, packing: bool, base: str) -> Path:
    path = work / f"records-{max_length}-{packing}.jsonl"
    make_records(path, 600 if max_length > 512 else 300, 0, max_length, base)
    if not packing:  # keep only long cases: every padded batch is then ~max_length wide
        from medtune.data.records import Record
        from medtune.data.render import render_example
        from medtune.models.load import load_tokenizer

        tok = load_tokenizer(base)
        lines = [line for line in path.read_text().splitlines()
                 if len(render_example(tok, Record.model_validate_json(line), "sections", max_length=10_000)) >= 0.85 * max_length]
        path.write_text("\n".join(lines) + "\n")
    return path


def medtune_rows(model_dir: str, base: str, device: str) -> list[str]:
    arch = arch_from_hf_config(model_dir)
    work = Path(tempfile.mkdtemp(prefix="medtune-mem-"))
    rows = ["| precision | packing | max_length | batch | grad ckpt | loss share | estimate GiB | measured GiB | ratio |",
            "|---|---|---|---|---|---|---|---|---|"]
    for k, (precision, packing, length, batch, ckpt) in enumerate(CONFIGS):
        records = records_for(work, length, packing, base)
        overrides = [f"model.base={base}", f"train.precision={precision}", f"train.packing={str(packing).lower()}",
                     f"data.max_length={length}", f"train.batch_size={batch}", f"train.gradient_checkpointing={str(ckpt).lower()}",
                     "train.max_steps=2", "data.val_fraction=0.0", "train.eval_steps=0", "train.lora.r=16",
                     "train.lora.alpha=32", "train.lora.dropout=0.05", f"train.lora.target_modules=[{','.join(TARGETS)}]"]
        m = measure_train_peak(str(records), overrides, str(work / f"run{k}"))
        measured = m.get("cuda_max_allocated_bytes", m["peak_increase_bytes"])
        est = estimate_training_memory(arch, method="lora", seq_len=length, batch=batch, grad_ckpt=ckpt, lora_r=16,
                                       targets="all-linear", dtype=m["precision"]["compute"], device=device,
                                       packing=packing, loss_share=m["loss_share"]).total
        rows.append(f"| {m['precision']['compute']} | {'yes' if packing else 'no'} | {length} | {batch} | "
                    f"{'yes' if ckpt else 'no'} | {m['loss_share']:.2f} | {est / GIB:.2f} | {measured / GIB:.2f} | "
                    f"{est / measured:.2f} |")
        print(rows[-1], flush=True)
    return rows


def plain_rows(model_dir: str, device: str) -> list[str]:
    arch = arch_from_hf_config(model_dir)
    rows = ["| seq | batch | grad ckpt | estimate GiB | measured GiB | ratio |", "|---|---|---|---|---|---|"]
    for seq, batch, ckpt in PLAIN:
        m = measure_lora_step(model_dir, seq_len=seq, batch=batch, grad_ckpt=ckpt, device=device)
        measured = m.get("cuda_max_allocated_bytes", m["peak_increase_bytes"])
        est = estimate_training_memory(arch, method="lora", seq_len=seq, batch=batch, grad_ckpt=ckpt, lora_r=16,
                                       targets="all-linear", dtype="fp32", device="cpu", trainer="plain").total
        rows.append(f"| {seq} | {batch} | {'yes' if ckpt else 'no'} | {est / GIB:.2f} | {measured / GIB:.2f} | {est / measured:.2f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default=None, help="HF folder (default: the embedded SmolLM2-135M)")
    ap.add_argument("--plain", action="store_true", help="check the plain-loop model instead of medtune's trainer")
    a = ap.parse_args()
    model_dir = a.model or str(materialize_embedded())
    rows = plain_rows(model_dir, a.device) if a.plain else medtune_rows(model_dir, a.model or "smollm2-135m", a.device)
    print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
