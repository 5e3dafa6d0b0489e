"""Checkpoints: atomic, verified, pruned; broken ones are skipped with a warning."""

from __future__ import annotations

import logging

import torch

from medtune.train import checkpoints as ckpt


def make_state(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (s + 1))
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    sched.step()
    return model, opt, sched


def test_roundtrip_restores_weights_optimizer_scheduler_and_rng(tmp_path):
    model, opt, sched = make_state(0)
    path = ckpt.save_checkpoint(tmp_path, 3, model, opt, sched, {"best_eval": 1.5}, keep=2)
    expected_draw = torch.rand(3)
    assert ckpt.verify(path) is None and path.name == "checkpoint-0000003"
    other, opt2, sched2 = make_state(1)
    state = ckpt.load_checkpoint(path, other, opt2, sched2)
    assert state == {"step": 3, "best_eval": 1.5}
    torch.testing.assert_close(other.weight, model.weight, rtol=0, atol=0)
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert sched2.last_epoch == sched.last_epoch
    torch.testing.assert_close(torch.rand(3), expected_draw)  # RNG continues where it was saved


def test_keeps_last_k_and_clears_interrupted_writes(tmp_path):
    model, opt, sched = make_state(0)
    (tmp_path / ".tmp-checkpoint-0000009-abc").mkdir()
    for step in (1, 2, 3, 4):
        ckpt.save_checkpoint(tmp_path, step, model, opt, sched, {}, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-0000004", "checkpoint-0000003"]
    assert not list(tmp_path.glob(".tmp-*"))


def test_incomplete_and_corrupt_checkpoints_are_skipped_with_a_warning(tmp_path, caplog):
    model, opt, sched = make_state(0)
    good = ckpt.save_checkpoint(tmp_path, 2, model, opt, sched, {}, keep=5)
    corrupt = ckpt.save_checkpoint(tmp_path, 4, model, opt, sched, {}, keep=5)
    with open(corrupt / "optimizer.pt", "r+b") as f:
        f.seek(10)
        f.write(b"\x00\xff\x00")
    incomplete = ckpt.save_checkpoint(tmp_path, 6, model, opt, sched, {}, keep=5)
    (incomplete / ckpt.MARKER).unlink()
    with caplog.at_level(logging.WARNING):
        assert ckpt.latest_valid(tmp_path) == good
    assert "checkpoint-0000006: no COMPLETE marker" in caplog.text
    assert "checkpoint-0000004: optimizer.pt does not match its sha256" in caplog.text
    assert ckpt.latest_valid(tmp_path / "missing") is None
