"""Measure the real peak memory of training, to check the estimator against.

Two probes, each run in a fresh subprocess (``python -m medtune.models.memprobe ...``) so that the
baseline is clean: RSS is sampled every few ms by a thread; the reported number is peak RSS during
load + training minus RSS after imports (CPU), or ``torch.cuda.max_memory_allocated`` (CUDA).

* ``measure_train_peak``: ``medtune train`` itself, on a records file, with config overrides
  (what the ``medtune`` estimator models);
* ``measure_lora_step``: a plain loop, LoRA r on all seven linear modules with dropout 0.05 and
  AdamW, full logits (the ``plain`` estimator).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time


class RssSampler:
    def __init__(self, interval: float = 0.002):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _lora_steps(model_dir: str, seq_len: int, batch: int, r: int, steps: int, grad_ckpt: bool, device: str) -> dict:
    import psutil
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base_rss = psutil.Process().memory_info().rss
    with RssSampler() as sampler:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device)
        if grad_ckpt:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.05, target_modules=targets))
        model.train()  # dropout active and gradient checkpointing engaged, as in real training
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        vocab = model.config.vocab_size
        for _ in range(steps):
            ids = torch.randint(0, vocab, (batch, seq_len), device=device)
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    out = {"peak_increase_bytes": sampler.peak - base_rss, "base_rss_bytes": base_rss}
    if device == "cuda":
        out["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated()
    return out


def measure_lora_step(model_dir: str, *, seq_len: int, batch: int, r: int = 16, steps: int = 2,
                      grad_ckpt: bool = False, device: str = "cpu") -> dict:
    """Run the probe in a subprocess and return its measurements."""
    cmd = [sys.executable, "-m", "medtune.models.memprobe", model_dir, "--seq-len", str(seq_len), "--batch", str(batch),
           "--r", str(r), "--steps", str(steps), "--device", device] + (["--grad-ckpt"] if grad_ckpt else [])
    # glibc keeps freed large blocks in the heap (its mmap threshold grows dynamically), so RSS
    # would report allocator fragmentation on top of live tensors. A fixed 128 KiB threshold
    # returns freed tensors to the OS and makes RSS track live memory, like CUDA's
    # max_memory_allocated. (Also a useful setting for CPU training: it lowers peak RSS.)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _train_peak(records: str, overrides: list[str], run_dir: str) -> dict:
    import psutil
    import torch

    from ..config import load_config
    from ..train import train

    cfg = load_config(None, overrides)
    base_rss = psutil.Process().memory_info().rss
    with RssSampler() as sampler:
        res = train(cfg, records, run_dir, progress=False)
    audit = res.manifest["render_audit"]["train"]
    out = {"peak_increase_bytes": sampler.peak - base_rss, "base_rss_bytes": base_rss,
           "loss_share": audit["trainable_tokens"] / max(audit["tokens"], 1), "precision": res.manifest["precision"]}
    if torch.cuda.is_available():
        out["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated()
    return out


def measure_train_peak(records: str, overrides: list[str], run_dir: str) -> dict:
    """Peak memory of ``medtune train`` (config ``overrides``) on ``records``, in a fresh subprocess."""
    cmd = [sys.executable, "-m", "medtune.models.memprobe", "train", records, "--run-dir", run_dir]
    cmd += [f"--set={o}" for o in overrides]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}  # RSS tracks live tensors (see measure_lora_step)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"memprobe train failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "train":
        tp = argparse.ArgumentParser()
        tp.add_argument("mode")
        tp.add_argument("records")
        tp.add_argument("--run-dir", required=True)
        tp.add_argument("--set", action="append", default=[])
        t = tp.parse_args()
        print(json.dumps(_train_peak(t.records, t.set, t.run_dir)))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--grad-ckpt", action="store_true")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    print(json.dumps(_lora_steps(a.model_dir, a.seq_len, a.batch, a.r, a.steps, a.grad_ckpt, a.device)))


if __name__ == "__main__":
    _main()
