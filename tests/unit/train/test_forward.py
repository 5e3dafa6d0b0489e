"""Several packs per forward (the GPU layout) compute exactly what one pack per forward computes.

Tolerance: in fp32 the summed loss of a step agrees to 1e-4 absolute / 1e-5 relative and every
LoRA gradient to 1e-5 absolute / 1e-4 relative (floating-point reassociation only); the gpu test
allows bf16 rounding (2e-3 relative on the loss, 2e-2 relative norm error on each gradient).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from medtune.data.records import Answer, Record
from medtune.data.render import render_example
from medtune.train.forward import ForwardPlan, collate_forward, forward_plan, group_packs, loss_sum
from medtune.train.packing import make_batches, trainable_tokens

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))
from train_helpers import write_records  # noqa: E402


def rendered(tok, n=9):
    out = []
    for i in range(n):
        rec = Record.create(source="t", task="mcq", question=f"Case {i}: chest pain " + "and fever " * (i % 4) + "?",
                            options={"A": "MI", "B": "GERD"}, answer=Answer(letter="A"),
                            reasoning="Ischemia fits. " * (1 + i % 3))
        out.append(render_example(tok, rec, "sections", max_length=512))
    return out


def lora_model(model_dir, dtype=torch.float32, device="cpu"):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear"))
    torch.manual_seed(0)
    with torch.no_grad():  # non-zero B, so both LoRA factors get gradients
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return model.train()


def step(model, examples, packs, plan, pad_id):
    """Summed loss and LoRA gradients of one step over ``packs``, in the passes ``plan`` makes."""
    model.zero_grad(set_to_none=True)
    total = 0.0
    for group in group_packs(list(range(len(packs))), plan.rows):
        batch = {k: v.to(model.device) for k, v in collate_forward(examples, [packs[g] for g in group], plan, pad_id).items()}
        part = loss_sum(model, batch)
        part.backward()
        total += float(part.detach())
    grads = {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}
    return total, grads


def assert_same(a, b, loss_tol, grad_tol):
    torch.testing.assert_close(torch.tensor(a[0]), torch.tensor(b[0]), **loss_tol)
    assert a[1].keys() == b[1].keys() and a[1]
    for name in a[1]:
        torch.testing.assert_close(a[1][name], b[1][name], **grad_tol, msg=lambda m, name=name: f"{name}: {m}")


def assert_same_bf16(a, b, loss_rtol, grad_rel_norm):
    """bf16 passes of different shapes round differently: elementwise tolerances fail on near-zero entries
    of large summed-loss gradients, so each gradient is compared by its relative (Frobenius) norm error."""
    torch.testing.assert_close(torch.tensor(a[0]), torch.tensor(b[0]), atol=0.0, rtol=loss_rtol)
    assert a[1].keys() == b[1].keys() and a[1]
    errors = {name: float((a[1][name] - b[1][name]).norm() / b[1][name].norm().clamp_min(1e-12)) for name in a[1]}
    worst = max(errors, key=errors.get)
    print(f"worst relative gradient error {errors[worst]:.2e} ({worst})")
    assert errors[worst] <= grad_rel_norm, f"{worst}: relative gradient error {errors[worst]:.2e} > {grad_rel_norm}"


def test_stacked_and_concatenated_packs_equal_per_row_passes(tiny_model_dir, tiny_tokenizer):
    examples = rendered(tiny_tokenizer)
    packs = make_batches(examples, packing=True, batch_size=4, max_length=160)
    lengths = {sum(len(examples[i]) for i in p) for p in packs}
    assert len(packs) >= 3 and len(lengths) > 1  # unequal rows: the stacked layout must pad
    model, pad = lora_model(tiny_model_dir), tiny_tokenizer.pad_token_id
    per_row = step(model, examples, packs, ForwardPlan(rows=1), pad)
    stacked = step(model, examples, packs, ForwardPlan(rows=3), pad)
    concat = step(model, examples, packs, ForwardPlan(rows=3, concat=True), pad)
    loss_tol, grad_tol = {"atol": 1e-4, "rtol": 1e-5}, {"atol": 1e-5, "rtol": 1e-4}
    assert_same(stacked, per_row, loss_tol, grad_tol)
    assert_same(concat, per_row, loss_tol, grad_tol)
    # The reference: transformers' own loss on each sample alone (mean x trainable tokens).
    with torch.no_grad():
        ref = sum(float(model(input_ids=torch.tensor([e.input_ids]), labels=torch.tensor([e.labels])).loss) * e.n_trainable
                  for e in examples)
    assert per_row[0] == pytest.approx(ref, rel=1e-5)
    assert trainable_tokens(examples, range(len(examples))) == sum(e.n_trainable for e in examples)


def test_stacked_rows_keep_samples_apart(tiny_model_dir, tiny_tokenizer):
    """Changing one pack's tokens leaves the other rows' logits untouched (no attention across rows or samples)."""
    examples = rendered(tiny_tokenizer, n=4)
    packs = [[0, 1], [2], [3]]
    plan = ForwardPlan(rows=3)
    batch = collate_forward(examples, packs, plan, tiny_tokenizer.pad_token_id)
    model = lora_model(tiny_model_dir).eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        changed = batch["input_ids"].clone()
        changed[0, : len(examples[0])] = 7  # rewrite sample 0 only
        again = model(input_ids=changed, position_ids=batch["position_ids"], use_cache=False).logits
    n0 = len(examples[0])
    torch.testing.assert_close(again[0, n0:], logits[0, n0:])  # sample 1 shares row 0 with sample 0
    torch.testing.assert_close(again[1:], logits[1:])


def test_plan_by_device():
    assert forward_plan("cpu", "sdpa", 8, True) == ForwardPlan()
    assert forward_plan("cuda", "sdpa", 8, False) == ForwardPlan()  # no packing: a batch is one padded pass already
    cuda = forward_plan("cuda", "sdpa", 8, True)
    assert (cuda.rows, cuda.concat) == (8, False) and "stacked" in cuda.describe()
    assert forward_plan("cuda", "flash_attention_2", 8, True).concat


@pytest.mark.gpu
def test_gpu_stacked_step_matches_per_row_and_trains(tiny_model_dir, tiny_tokenizer, tmp_path):
    """On CUDA: bf16 stacked (and Liger, when installed) vs per-row passes; then a short real run stacks packs."""
    from medtune.config import load_config
    from medtune.train import train

    examples = rendered(tiny_tokenizer)
    packs = make_batches(examples, packing=True, batch_size=4, max_length=160)
    model, pad = lora_model(tiny_model_dir, torch.bfloat16, "cuda"), tiny_tokenizer.pad_token_id
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        per_row = step(model, examples, packs, ForwardPlan(rows=1), pad)
        stacked = step(model, examples, packs, ForwardPlan(rows=4), pad)
    assert_same_bf16(stacked, per_row, loss_rtol=2e-3, grad_rel_norm=2e-2)
    data = write_records(tmp_path / "records.jsonl", n=48)
    cfg = load_config(None, [f"model.base={tiny_model_dir}", "data.max_length=192", "data.val_fraction=0.15",
                             "train.batch_size=4", "train.max_steps=16", "train.learning_rate=0.01", "train.eval_steps=16"])
    res = train(cfg, data, tmp_path / "run", progress=False)
    assert res.manifest["forward_plan"].startswith("4 packs per forward")
    assert res.final_eval_loss < res.first_eval_loss
