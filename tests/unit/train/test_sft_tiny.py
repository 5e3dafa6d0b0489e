"""The run-folder contract, learning, early stopping and full fine-tuning on the tiny model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from medtune.config import ConfigError, load_config
from medtune.train import load_trained, train

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))
from train_helpers import write_records  # noqa: E402


def cfg_for(base: Path, *overrides: str):
    return load_config(None, [f"model.base={base}", "data.max_length=192", "data.val_fraction=0.15", "train.batch_size=2",
                              "train.lora.r=4", "train.lora.alpha=8", "train.logging_steps=1", *overrides])


def test_run_folder_contract_and_eval_loss_falls(tmp_path, tiny_model_dir):
    data = write_records(tmp_path / "records.jsonl", n=40)
    cfg = cfg_for(tiny_model_dir, "train.max_steps=24", "train.learning_rate=0.01", "train.eval_steps=8")
    res = train(cfg, data, tmp_path / "run", progress=False)
    run = res.run_dir
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= {p.name for p in (run / "adapter").iterdir()}
    manifest = json.loads((run / "manifest.json").read_text())
    for key in ("run_id", "base_model", "base_path", "reasoning_format", "method", "medtune_version", "packages",
                "data_manifest_sha256", "git_commit", "hardware", "wall_time_s", "tokens_per_s", "peak_memory_mb",
                "final_eval_loss", "best_eval_loss"):
        assert key in manifest, key
    assert manifest["base_model"] == str(tiny_model_dir) and manifest["method"] == "lora"
    assert list(manifest["data_manifest_sha256"].values())[0] == __import__("hashlib").sha256(data.read_bytes()).hexdigest()
    assert load_config(run / "config.yaml").model.base == str(tiny_model_dir)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval_loss" in r] == [0, 8, 16, 24]
    assert list((run / "tensorboard").glob("events.out.tfevents.*")) and (run / "loss_curve.png").stat().st_size > 1000
    assert res.final_eval_loss < res.first_eval_loss - 0.15, (res.first_eval_loss, res.final_eval_loss)
    assert res.best_eval_loss == min(r["eval_loss"] for r in rows if "eval_loss" in r)

    tuned = load_trained(run)
    ids = torch.tensor([tuned.tokenizer("chest pain radiating", add_special_tokens=False)["input_ids"]])
    base = load_trained.__globals__["load_model"](str(tiny_model_dir))
    with torch.no_grad():
        assert not torch.allclose(tuned.model(ids.to(tuned.model.device)).logits.float().cpu(),
                                  base.model(ids.to(base.model.device)).logits.float().cpu())


def test_early_stopping_when_eval_loss_stops_improving(tmp_path, tiny_model_dir):
    data = write_records(tmp_path / "records.jsonl", n=24)
    cfg = cfg_for(tiny_model_dir, "train.max_steps=40", "train.learning_rate=1e-12", "train.eval_steps=2",
                  "train.early_stopping_patience=2", "train.scheduler=constant")
    res = train(cfg, data, tmp_path / "run", progress=False)
    assert res.stopped_early and res.steps == 4  # evals at 0 (best), 2 and 4 (no gain) -> stop


@pytest.mark.parametrize("evals", ["train.eval_steps=0", "data.val_fraction=0"])
def test_every_step_trains_in_training_mode(tmp_path, tiny_model_dir, monkeypatch, evals):
    """from_pretrained hands over a model in eval mode; before the fix, a run with no eval at step 0
    trained with LoRA dropout off and gradient checkpointing inert (its peak memory unchanged)."""
    import medtune.train.sft as sft

    seen: list[tuple[bool, bool]] = []
    real_step = sft._run_step

    def spy(s, cfg, step):
        layers = [m for m in s.model.modules() if getattr(m, "gradient_checkpointing", False)]
        seen.append((s.model.training, bool(layers) and all(m.training for m in layers)))
        return real_step(s, cfg, step)

    monkeypatch.setattr(sft, "_run_step", spy)
    data = write_records(tmp_path / "records.jsonl", n=16)
    cfg = cfg_for(tiny_model_dir, "train.max_steps=2", "train.gradient_checkpointing=true", evals)
    train(cfg, data, tmp_path / "run", progress=False)
    assert seen == [(True, True), (True, True)]


def test_full_finetuning_writes_a_model_folder(tmp_path, tiny_model_dir):
    data = write_records(tmp_path / "records.jsonl", n=16)
    res = train(cfg_for(tiny_model_dir, "train.method=full", "train.max_steps=2", "train.learning_rate=1e-3"),
                data, tmp_path / "run", progress=False)
    assert res.output_dir.name == "model" and (res.output_dir / "config.json").is_file()
    assert load_trained(res.run_dir).path == res.output_dir


def test_refuses_to_overwrite_a_run_and_to_train_on_nothing(tmp_path, tiny_model_dir):
    (tmp_path / "run" / "checkpoints" / "checkpoint-0000002").mkdir(parents=True)
    data = write_records(tmp_path / "records.jsonl", n=8)
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg_for(tiny_model_dir, "train.max_steps=1"), data, tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="no trainable samples"):
        train(cfg_for(tiny_model_dir, "train.max_steps=1", "data.max_length=16", "data.truncation=drop"), data,
              tmp_path / "other", progress=False)


def test_a_best_left_by_an_earlier_run_is_never_the_output(tmp_path, tiny_model_dir, caplog):
    """Re-running into a folder (no checkpoints: allowed) whose step-0 eval is never beaten: the output is this
    run's last step, not the earlier run's RUN/best, and the manifest and log say the untrained model was best."""
    from safetensors.torch import load_file

    data = write_records(tmp_path / "records.jsonl", n=24)
    run = tmp_path / "run"
    first = train(cfg_for(tiny_model_dir, "train.max_steps=6", "train.learning_rate=0.01", "train.eval_steps=2"),
                  data, run, progress=False)
    assert first.manifest["best_step"] > 0 and (run / "best/adapter_model.safetensors").is_file()
    stale = load_file(run / "best/adapter_model.safetensors")
    res = train(cfg_for(tiny_model_dir, "train.max_steps=4", "train.learning_rate=1e-12", "train.eval_steps=2",
                        "train.scheduler=constant"), data, run, progress=False)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["best_step"] == 0 and manifest["output_is_best_checkpoint"] is False
    assert manifest["untrained_was_best"] is True and "untrained model" in caplog.text
    out = load_file(res.output_dir / "adapter_model.safetensors")
    assert out.keys() == stale.keys() and not (run / "best").exists()
    assert all(not torch.equal(out[k], stale[k]) for k in out if "lora_B" in k)
    assert all(out[k].abs().max() < 1e-6 for k in out if "lora_B" in k)  # this run's (untrained) adapter


def test_deepspeed_with_medtunes_own_accumulation_is_refused():
    """DeepSpeed steps its engine on every backward: several forward passes per step would be several optimizer steps."""
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from medtune.config import ConfigError
    from medtune.train.packing import refuse_deepspeed_accumulation

    ds = SimpleNamespace(distributed_type=DistributedType.DEEPSPEED)
    refuse_deepspeed_accumulation(ds, micro_batches=4, rows=4)  # one pass per process: fine
    refuse_deepspeed_accumulation(SimpleNamespace(distributed_type=DistributedType.MULTI_GPU), 8, 1)  # DDP accumulates
    with pytest.raises(ConfigError, match="optimizer step on each of this step's 2 forward passes"):
        refuse_deepspeed_accumulation(ds, micro_batches=2, rows=1)
