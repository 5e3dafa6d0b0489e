"""Outputs get ordinary permissions, and replacing a folder never deletes the old one first."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from medtune.utils import io as mio


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing(umask):
    assert mio.current_umask() == umask
    assert mio.current_umask() == umask  # still the same: reading did not reset it


def test_atomic_files_get_ordinary_permissions(umask, tmp_path):
    text = mio.atomic_write_text(tmp_path / "a" / "summary.txt", "x")
    js = mio.atomic_write_json(tmp_path / "a" / "summary.json", {"k": 1})
    jl = tmp_path / "a" / "rows.jsonl"
    mio.atomic_write_jsonl(jl, [{"k": 1}])
    for path in (text, js, jl):
        assert _mode(path) == 0o666 & ~umask, oct(_mode(path))
    assert _mode(tmp_path / "a") == 0o777 & ~umask  # made by mkdir, for comparison


def test_atomic_dir_gets_ordinary_permissions(umask, tmp_path):
    """Including files that libraries write as 0600 (safetensors, hence every save_pretrained)."""
    import torch
    from safetensors.torch import save_file

    with mio.atomic_dir(tmp_path / "merged") as tmp:
        (tmp / "config.json").write_text("{}")
        (tmp / "sub").mkdir()
        save_file({"w": torch.zeros(2)}, tmp / "sub" / "model.safetensors")
    out = tmp_path / "merged"
    assert _mode(out) == _mode(out / "sub") == 0o777 & ~umask
    assert _mode(out / "config.json") == _mode(out / "sub" / "model.safetensors") == 0o666 & ~umask


def _folder(path: Path, text: str) -> Path:
    path.mkdir()
    (path / "weights.txt").write_text(text)
    return path


def test_replace_dir_swaps_and_leaves_nothing_behind(tmp_path):
    out = _folder(tmp_path / "model", "old")
    mio.replace_dir(_folder(tmp_path / "new", "new"), out)
    assert (out / "weights.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_old_folder_is_in_place_until_the_new_one_is(tmp_path, monkeypatch):
    """The moment the new folder lands, the old one still exists (aside); it is removed only after."""
    out = _folder(tmp_path / "model", "old")
    new = _folder(tmp_path / "new", "new")
    seen = []
    real_replace = os.replace

    def watching_replace(src, dst):
        if Path(src) == new:  # the swap itself: the old data must still be on disk somewhere
            old_copies = [p for p in tmp_path.glob(".model.old-*") if (p / "weights.txt").is_file()]
            seen.append([(p / "weights.txt").read_text() for p in old_copies])
        return real_replace(src, dst)

    monkeypatch.setattr(mio.os, "replace", watching_replace)
    mio.replace_dir(new, out)
    assert seen == [["old"]]
    assert (out / "weights.txt").read_text() == "new"


def test_failed_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    out = _folder(tmp_path / "model", "old")
    new = _folder(tmp_path / "new", "new")
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(src) == new:
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(mio.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        mio.replace_dir(new, out)
    assert (out / "weights.txt").read_text() == "old"
    assert not list(tmp_path.glob(".model.old-*"))


def test_atomic_dir_that_fails_keeps_the_old_folder(tmp_path):
    out = _folder(tmp_path / "model", "old")
    with pytest.raises(RuntimeError), mio.atomic_dir(out) as tmp:
        (tmp / "weights.txt").write_text("half")
        raise RuntimeError("interrupted")
    assert (out / "weights.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # the temp folder is gone


def test_checkpoint_rewrite_is_a_swap_with_ordinary_permissions(umask, tmp_path):
    """Re-saving a step (a resumed run) replaces the checkpoint by swap; folder and files are 0755/0644."""
    import torch

    from medtune.train import checkpoints as ckpt

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    first = ckpt.save_checkpoint(tmp_path, 5, model, opt, sched, {"tag": "first"}, keep=3)
    again = ckpt.save_checkpoint(tmp_path, 5, model, opt, sched, {"tag": "second"}, keep=3)
    assert first == again and ckpt.verify(again) is None
    assert '"second"' in (again / "loop_state.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-0000005"]
    assert _mode(again) == 0o777 & ~umask
    assert {_mode(p) for p in again.iterdir()} == {0o666 & ~umask}
