"""The second training stage on the tiny model: GRPO, DPO and ORPO through TRL from an SFT run, resume, data, chaining."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

from medtune.config import ConfigError, load_config
from medtune.train import load_trained, train

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))
from rl_helpers import GRPO, cfg_for  # noqa: E402
from train_helpers import write_records  # noqa: E402


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, tiny_model_dir) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("rl")
    data = write_records(root / "records.jsonl", n=16)
    train(cfg_for(tiny_model_dir, "train.max_steps=2"), data, root / "sft", progress=False)
    return root / "sft", data


def logits(run: Path) -> torch.Tensor:
    model = load_trained(run, device="cpu", dtype="float32")  # exact comparisons, whatever trained the run
    ids = torch.tensor([model.tokenizer("chest pain radiating", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        return model.model(ids).logits


@pytest.mark.parametrize("stage", ["grpo", "dpo", "orpo"])
def test_two_steps_of_each_stage_from_an_sft_run(tmp_path, tiny_model_dir, sft_run, stage, capsys):
    sft, data = sft_run
    # data.max_length: room for every pair to differ (at 192 the pairs of 4 of the 16 records differ past it: left out)
    cfg = cfg_for(tiny_model_dir, f"train.stage={stage}", f"train.init_from={sft}", "train.max_steps=2", "data.max_length=256",
                  *GRPO)
    res = train(cfg, data, tmp_path / stage, progress=False)
    assert "'loss'" not in capsys.readouterr().out  # --quiet: no log dicts printed (they go to metrics.jsonl)
    run = res.run_dir
    manifest = json.loads((run / "manifest.json").read_text())
    assert res.steps == 2 and manifest["stage"] == stage and manifest["init_from"] == str(sft)
    assert manifest["init_adapters"] == ["init/0"] and (run / "init/0/adapter_config.json").is_file()
    assert (run / "adapter/adapter_model.safetensors").is_file() and (run / "loss_curve.png").is_file()
    assert list(manifest["data_files"].values())[0] == __import__("hashlib").sha256(data.read_bytes()).hexdigest()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train_loss" in r] == [1, 2]
    if stage == "grpo":  # each reward term on its own curve; the tiny random model earns none
        assert {"rewards_correct_mean", "rewards_format_mean", "reward"} <= set(rows[0])
        assert manifest["examples"] == {"train": 16, "val": 0, "prompts": 16}
    else:  # two synth pairs per lettered record; the new adapter moved the model away from the SFT policy
        assert manifest["examples"]["wrong_conclusion"] == manifest["examples"]["wrong_letter"] == 16
        assert "rewards_margins" in rows[0] and (run / "reward_curve.png").is_file()
        assert not torch.allclose(logits(run), logits(sft))


def test_an_interrupted_stage_resumes_to_the_same_adapter(tmp_path, tiny_model_dir, sft_run, monkeypatch):
    import medtune.train.rl as rl

    sft, data = sft_run
    cfg = cfg_for(tiny_model_dir, "train.stage=dpo", f"train.init_from={sft}", "train.max_steps=4", "train.save_steps=2")
    straight = train(cfg, data, tmp_path / "straight", progress=False)

    real = rl._metrics_callback

    def crash_at_3(metrics):
        cb = real(metrics)
        cls = type(cb)

        class Crash(cls):
            def on_step_end(self, args, state, control, **kw):
                if state.global_step == 3:
                    raise KeyboardInterrupt("killed at step 3")

        return Crash()

    monkeypatch.setattr(rl, "_metrics_callback", crash_at_3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, data, tmp_path / "resumed", progress=False)
    assert (tmp_path / "resumed/checkpoints/checkpoint-2/COMPLETE").is_file()
    monkeypatch.setattr(rl, "_metrics_callback", real)
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg, data, tmp_path / "resumed", progress=False)
    resumed = train(cfg, data, tmp_path / "resumed", resume=True, progress=False)
    assert resumed.manifest["resumed_from_step"] == 2 and resumed.steps == 4
    assert torch.allclose(logits(straight.run_dir), logits(resumed.run_dir), atol=1e-5)
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed/metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # the rows after the resumed step were dropped, then logged once each


def test_imported_pairs_and_their_bad_rows(tmp_path, tiny_model_dir, sft_run):
    sft, _ = sft_run
    rows = [
        {"prompt": "Chest pain radiating to the arm. Diagnosis?", "chosen": "Myocardial infarction.", "rejected": "Asthma."},
        {"chosen": [{"role": "user", "content": "Fever and dysuria?"}, {"role": "assistant", "content": "Pyelonephritis."}],
         "rejected": [{"role": "user", "content": "Fever and dysuria?"}, {"role": "assistant", "content": "Stroke."}]},
        {"prompt": "Q?", "chosen": "Same.", "rejected": "Same."},
        {"prompt": "Q?", "chosen": "Yes."},
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    cfg = cfg_for(tiny_model_dir, "train.stage=dpo", f"train.init_from={sft}", "train.max_steps=1")
    res = train(cfg, path, tmp_path / "run", progress=False)
    assert res.manifest["examples"] == {"train": 2, "val": 0, "imported": 2, "quarantined_pairs": 3, "undecided_pairs": 0}
    bad = [json.loads(line) for line in (tmp_path / "run/quarantine-pairs.jsonl").read_text().splitlines()]
    assert [(b["line"], b["field"]) for b in bad] == [(3, "rejected"), (4, "rejected"), (5, bad[2]["field"])]
    assert all(b["file"] == str(path) for b in bad)


def test_prompts_that_copy_a_benchmark_item_stop_the_stage(tmp_path, tiny_model_dir, sft_run):
    from medtune.data.records import Answer, Record
    from medtune.eval.benchmarks import get_benchmark, load_benchmark_records

    sft, _ = sft_run
    item = load_benchmark_records(get_benchmark("dev_vignettes"))[0]
    rec = Record.create(source="copied", task="mcq", question=item.question, options=item.options, answer=Answer(letter="A"))
    data = write_records(tmp_path / "records.jsonl", n=4)
    with data.open("a") as f:
        f.write(rec.model_dump_json() + "\n")
    cfg = cfg_for(tiny_model_dir, "train.stage=grpo", f"train.init_from={sft}", "train.max_steps=1", "data.contamination=refuse",
                  *GRPO)
    with pytest.raises(ConfigError, match="overlap benchmark items"):
        train(cfg, data, tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run/contamination.json").read_text())["flagged"] == 1


def test_bad_stage_settings_are_config_errors(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="multiple of it"):
        cfg_for(tiny_model_dir, "train.stage=grpo", "train.batch_size=3", "train.rl.num_generations=2")
    with pytest.raises(ConfigError, match="train.init_from"):
        train(cfg_for(tiny_model_dir, "train.stage=dpo", f"train.init_from={tmp_path}"), None, tmp_path / "x", progress=False)


def test_medtune_run_chains_the_sft_recipe_then_dpo(tmp_path, tiny_model_dir, sft_run):
    """train.init_from naming a recipe: `medtune run` runs that recipe's stages up to train (or skips them), then DPO."""
    from medtune.pipeline import run_pipeline

    _, data = sft_run
    overrides = {"model": {"base": str(tiny_model_dir)}, "data": {"max_length": 192, "train_files": [str(data)]},
                 "train": {"batch_size": 2, "lora": {"r": 4, "alpha": 8}, "max_steps": 2}}
    sft_recipe = tmp_path / "sft.yaml"
    sft_recipe.write_text(yaml.safe_dump({"name": "sft", "run_dir": str(tmp_path / "sft-run"), "stages": ["train"], **overrides}))
    rl = dict(overrides, train={**overrides["train"], "stage": "dpo", "init_from": str(sft_recipe)})
    cfg = load_config(None, values={"name": "rl", "run_dir": str(tmp_path / "rl-run"), "stages": ["train"], **rl})
    lines: list[str] = []
    run_pipeline(cfg, echo=lines.append, progress=False)
    manifest = json.loads((tmp_path / "rl-run/train/manifest.json").read_text())
    assert manifest["stage"] == "dpo" and manifest["init_from"] == str(tmp_path / "sft-run/train")
    assert any("running" in line and "sft.yaml" in line for line in lines)
    lines.clear()
    again = run_pipeline(cfg, echo=lines.append, progress=False)
    assert [o.action for o in again.outcomes] == ["skipped"], lines


def test_a_retrained_sft_run_trains_the_stage_again(tmp_path, tiny_model_dir, sft_run):
    """The stage's key holds the SFT model the recipe leaves, not the recipe file: SFT data edited (the recipe as it
    was) -> the SFT run trains again, and so does DPO, from the new SFT adapter."""
    from medtune.pipeline import run_pipeline

    _, data = sft_run
    sft_data = tmp_path / "sft-records.jsonl"
    sft_data.write_text(data.read_text())
    sft_recipe = tmp_path / "sft.yaml"
    sft_recipe.write_text(yaml.safe_dump({"name": "sft", "run_dir": str(tmp_path / "sft-run"), "stages": ["train"],
                                          "model": {"base": str(tiny_model_dir)},
                                          "data": {"max_length": 192, "train_files": [str(sft_data)]},
                                          "train": {"batch_size": 2, "lora": {"r": 4, "alpha": 8}, "max_steps": 2}}))
    cfg = load_config(None, values={"name": "rl", "run_dir": str(tmp_path / "rl-run"), "stages": ["train"],
                                    "model": {"base": str(tiny_model_dir)},
                                    "data": {"max_length": 192, "train_files": [str(data)], "contamination": "off"},
                                    "train": {"batch_size": 2, "lora": {"r": 4, "alpha": 8}, "max_steps": 1, "stage": "dpo",
                                              "init_from": str(sft_recipe)}})
    run_pipeline(cfg, echo=lambda _: None, progress=False)
    adapter = tmp_path / "sft-run/train/adapter/adapter_model.safetensors"
    first_sft, first_init = adapter.read_bytes(), (tmp_path / "rl-run/train/init/0/adapter_model.safetensors").read_bytes()
    assert first_init == first_sft
    sft_data.write_text(sft_data.read_text().replace("Case 0:", "Case zero:"))  # the SFT recipe's data, not the recipe
    lines: list[str] = []
    again = run_pipeline(cfg, echo=lines.append, progress=False)
    assert [o.action for o in again.outcomes] == ["ran"], lines
    assert any("train: changed:" in line and "init run changed" in line for line in lines), lines
    assert any("train: changed:" in line and f"data file {sft_data} changed" in line for line in lines), lines  # SFT's
    assert adapter.read_bytes() != first_sft
    assert (tmp_path / "rl-run/train/init/0/adapter_model.safetensors").read_bytes() == adapter.read_bytes()
    lines.clear()
    assert [o.action for o in run_pipeline(cfg, echo=lines.append, progress=False).outcomes] == ["skipped"], lines


def test_export_merges_the_sft_adapter_under_the_stage_adapter(tmp_path, tiny_model_dir, sft_run):
    """Export's merge and load_trained read a second-stage run the same way: base + SFT adapter + the new one."""
    from medtune.export.merge import merge_adapter
    from medtune.models.load import load_model

    sft, data = sft_run
    cfg = cfg_for(tiny_model_dir, "train.stage=dpo", f"train.init_from={sft}", "train.max_steps=1", "train.learning_rate=0.05")
    run = train(cfg, data, tmp_path / "dpo", progress=False).run_dir
    merged = load_model(str(merge_adapter(run, tmp_path / "merged", keep_fp32=True)), device="cpu", dtype="float32")
    ids = torch.tensor([merged.tokenizer("chest pain radiating", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(merged.model(ids).logits, logits(run), atol=1e-4)
        assert not torch.allclose(logits(run), logits(sft), atol=1e-4)
    (run / "init/0/adapter_config.json").unlink()
    with pytest.raises(Exception, match="started from is missing"):
        load_trained(run)


def test_stage_settings_reach_trl(tmp_path, tiny_model_dir):
    """One field each: the train section's values are what TRL's configs receive."""
    from medtune.models.precision import train_precision
    from medtune.train.rl import trl_args

    prec = train_precision("cpu", "fp32", "auto", "lora")
    dpo = trl_args(cfg_for(tiny_model_dir, "train.stage=dpo", "train.rl.sft_weight=0.5", "train.rl.beta=0.2",
                           "train.max_steps=7", "train.save_steps=3"), tmp_path, "cpu", prec, False)
    assert dpo.loss_type == ["sigmoid", "sft"] and dpo.loss_weights == [1.0, 0.5] and dpo.beta == 0.2
    assert dpo.max_steps == 7 and dpo.save_steps == 3 and dpo.output_dir == str(tmp_path / "checkpoints")
    assert trl_args(cfg_for(tiny_model_dir, "train.stage=dpo"), tmp_path, "cpu", prec, False).loss_type == ["sigmoid"]
    grpo = trl_args(cfg_for(tiny_model_dir, "train.stage=grpo", *GRPO, "train.rl.rewards.length=0.5"), tmp_path, "cpu",
                    prec, False)
    assert grpo.num_generations == 2 and grpo.max_completion_length == 12 and grpo.reward_weights == [1.0, 0.1, 0.5]


def test_recipes_whose_init_from_loop_are_refused(tmp_path, tiny_model_dir, sft_run):
    from medtune.pipeline import run_pipeline

    _, data = sft_run
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    for me, other in ((a, b), (b, a)):
        me.write_text(yaml.safe_dump({"name": me.stem, "run_dir": str(tmp_path / me.stem), "stages": ["train"],
                                      "model": {"base": str(tiny_model_dir)}, "data": {"train_files": [str(data)]},
                                      "train": {"stage": "dpo", "init_from": str(other), "max_steps": 1}}))
    with pytest.raises(ConfigError, match="form a loop"):
        run_pipeline(load_config(a), progress=False, echo=lambda _: None)


def test_a_lora_stage_on_a_full_finetune_keeps_its_weights(tmp_path, tiny_model_dir, monkeypatch):
    """The stage's adapter applies to the full fine-tune it trained on (copied to RUN/init/model), never to the
    original base: load_trained and export's merge give the model at the end of training, SFT folder gone or not."""
    import shutil

    import medtune.train.rl as rl
    from medtune.export.merge import merge_adapter
    from medtune.models.load import load_model

    data = write_records(tmp_path / "records.jsonl", n=8)
    sft = train(cfg_for(tiny_model_dir, "train.method=full", "train.max_steps=2", "train.precision=fp32"), data,
                tmp_path / "sft", progress=False).run_dir
    trainers = []
    real = rl.make_trainer
    monkeypatch.setattr(rl, "make_trainer", lambda *a, **kw: trainers.append(real(*a, **kw)) or trainers[-1])
    cfg = cfg_for(tiny_model_dir, "train.stage=dpo", f"train.init_from={sft}", "train.max_steps=1", "train.precision=fp32")
    run = train(cfg, data, tmp_path / "dpo", progress=False).run_dir
    base = load_model(str(tiny_model_dir), device="cpu", dtype="float32")
    ids = torch.tensor([base.tokenizer("chest pain radiating", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        trained = trainers[0].model.eval()(input_ids=ids).logits.float()  # the model at the end of training
        assert not torch.allclose(base.model(ids).logits, trained, atol=1e-3)  # the SFT weights are in it
    assert torch.allclose(logits(run), trained, atol=1e-5)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["init_model"] == "init/model" and manifest["init_adapters"] == []
    assert manifest["base_path"] == str((run / "init/model").resolve())
    shutil.rmtree(sft / "model")  # the run reads its own copy, not the SFT folder
    assert torch.allclose(logits(run), trained, atol=1e-5)
    merged = load_model(str(merge_adapter(run, tmp_path / "merged", keep_fp32=True)), device="cpu", dtype="float32")
    with torch.no_grad():
        assert torch.allclose(merged.model(ids).logits, trained, atol=1e-4)
    from medtune.eval.identity import _digest, run_identities

    moved = tmp_path / "moved"  # a run folder moved elsewhere: every reader still resolves its own copy
    shutil.move(str(run), moved)
    assert run_identities(moved)[1] == f"sha256:{_digest(moved / 'init/model')}"
    assert torch.allclose(logits(moved), trained, atol=1e-5)
    shutil.rmtree(moved / "init/model")
    with pytest.raises(Exception, match="started from is missing"):
        load_trained(moved)


@pytest.mark.parametrize("method,load_in_4bit", [("qlora", False), ("lora", True)])
def test_a_4bit_stage_from_the_base_loads_it_in_4bit(tmp_path, tiny_model_dir, monkeypatch, method, load_in_4bit):
    """method qlora (or model.load_in_4bit) loads the base in 4-bit, as the SFT stage does (bitsandbytes needs CUDA:
    the loader's arguments are what is checked); from a trained run it is refused."""
    import medtune.models.load as models_load
    from medtune.models.precision import train_precision
    from medtune.train.rl import _start_model

    seen = {}

    def fake_load(spec, **kw):
        seen.update(kw, spec=spec)
        raise RuntimeError("stop after the loader's arguments")

    monkeypatch.setattr(models_load, "load_model", fake_load)
    cfg = cfg_for(tiny_model_dir, "train.stage=dpo", f"train.method={method}", f"model.load_in_4bit={load_in_4bit}")
    prec = train_precision("cpu", "fp32", "auto", "lora")
    with pytest.raises(RuntimeError, match="loader's arguments"):
        _start_model(cfg, tmp_path, "cpu", prec)
    assert seen["spec"] == str(tiny_model_dir) and seen["load_in_4bit"] is True
    with pytest.raises(ConfigError, match="4-bit loading cannot start from a trained run"):
        _start_model(cfg.model_copy(update={"train": cfg.train.model_copy(update={"init_from": str(tmp_path)})}),
                     tmp_path, "cpu", prec)


@pytest.fixture(scope="module")
def bos_model_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model with a Llama-3-like tokenizer: it adds a BOS, and the chat template starts with it too."""
    import shutil

    from tiny import CHATML_TEMPLATE
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("bos") / "model"
    shutil.copytree(tiny_model_dir, out)
    tok = AutoTokenizer.from_pretrained(out, add_bos_token=True, bos_token="<|endoftext|>")
    tok.chat_template = "{{ bos_token }}" + CHATML_TEMPLATE
    tok.save_pretrained(out)
    return out


@pytest.mark.parametrize("stage", ["grpo", "dpo", "orpo"])
def test_trl_tokenizes_the_prompts_as_eval_does_when_the_tokenizer_adds_a_bos(tmp_path, bos_model_dir, stage):
    """TRL tokenizes string prompts with special tokens on; the stage trains on the ids eval and serve use
    (the template's BOS once), for the prompt and for the prompt + completion."""
    from medtune.data.records import Record
    from medtune.models.load import load_model
    from medtune.models.precision import train_precision
    from medtune.train import rl
    from medtune.train.pairs import grpo_rows, synth_pairs

    data = write_records(tmp_path / "records.jsonl", n=4)
    records = [Record.model_validate_json(line) for line in data.read_text().splitlines()]
    cfg = cfg_for(bos_model_dir, f"train.stage={stage}", "train.max_steps=1", "data.max_length=512", *GRPO)  # no truncation
    loaded = load_model(str(bos_model_dir), device="cpu", dtype="float32")
    tok = loaded.tokenizer
    assert tok("x")["input_ids"][0] == tok.bos_token_id  # the case under test: the tokenizer adds a BOS
    fmt = cfg.model.resolved_reasoning_format(loaded.source.reasoning_format)
    dataset, _, _ = rl.stage_data(cfg, [str(data)], tmp_path, loaded, fmt)
    args = rl.trl_args(cfg, tmp_path, "cpu", train_precision("cpu", "fp32", "auto", "lora"), False)
    trainer = rl.make_trainer(cfg, args, loaded, dataset, fmt, [])

    def ids(text: str) -> list[int]:  # eval's and serve's tokenization: the template carries the BOS
        return tok(text, add_special_tokens=False)["input_ids"]

    if stage == "grpo":
        prompts = [r["prompt"] for r in grpo_rows(records, tok, fmt, None)]
        got = trainer._tokenize_prompts(list(dataset["prompt"]))[0]
        assert [list(g) for g in got] == [ids(p) for p in prompts]
        assert got[0][:2] == [tok.bos_token_id, tok.convert_tokens_to_ids("<|im_start|>")]
        return
    pairs = synth_pairs(records, tok, fmt, None)
    rows = trainer.train_dataset
    if stage == "dpo":
        assert [r["prompt_ids"] for r in rows] == [ids(p.prompt) for p in pairs]
        assert [r["prompt_ids"] + r["chosen_ids"] for r in rows] == [ids(p.prompt + p.chosen + tok.eos_token) for p in pairs]
        assert [r["prompt_ids"] + r["rejected_ids"] for r in rows] == [ids(p.prompt + p.rejected + tok.eos_token) for p in pairs]
    else:  # ORPO tokenizes without special tokens and adds a missing BOS itself
        assert [r["prompt_input_ids"] for r in rows] == [ids(p.prompt) for p in pairs]
        assert [r["chosen_input_ids"] for r in rows] == [ids(p.prompt + p.chosen + tok.eos_token) for p in pairs]
