"""Preference pairs before the trainer: rows the template cannot render, pairs truncation leaves undecided, and the
SFT-only settings an RL stage names as unused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from medtune.config import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rl_helpers import cfg_for  # noqa: E402


def test_a_pairs_row_the_template_cannot_render_is_quarantined_not_fatal(tmp_path, tiny_model_dir):
    """Messages without text content (missing, a number, null) failed inside the chat template (jinja UndefinedError,
    TypeError) and stopped the whole run after the model had loaded; each is that row's problem."""
    from transformers import AutoTokenizer

    from medtune.data.quality import Quarantine
    from medtune.train.pairs import read_pairs

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [{"prompt": [{"role": "user"}], "chosen": "A.", "rejected": "B."},
            {"prompt": [{"role": "user", "content": 5}], "chosen": "A.", "rejected": "B."},
            {"prompt": "Q?", "chosen": [{"role": "assistant", "content": None}], "rejected": "B."},
            {"prompt": "Chest pain?", "chosen": "Myocardial infarction.", "rejected": "Asthma."}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with Quarantine(tmp_path / "q.jsonl") as q:
        pairs = read_pairs([path], tok, None, q)
    assert [p.chosen for p in pairs] == ["Myocardial infarction."]
    bad = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [(b["line"], b["field"]) for b in bad] == [(1, "prompt"), (2, "prompt"), (3, "chosen")]


def test_pairs_that_truncation_leaves_identical_never_reach_the_trainer(tmp_path, tiny_model_dir):
    """DPO keeps the start of an over-long pair (TRL's keep_start): answers that first differ past data.max_length reach
    the loss as the same tokens twice, a pair with no preference in it. Such pairs are quarantined (with where they
    differ) and counted; when none is left the stage refuses, naming data.max_length."""
    from datasets import Dataset

    from medtune.models.load import load_model
    from medtune.models.precision import train_precision
    from medtune.train import rl
    from medtune.train.pairs import PreferencePair, first_difference, trl_prompt

    shared = "Key findings: " + "crushing chest pain radiating to the left arm and diaphoresis; " * 6
    rows = [{"id": "short", "prompt": "Chest pain?", "chosen": "Myocardial infarction.", "rejected": "Asthma."},
            {"id": "long", "prompt": "Chest pain?", "chosen": shared + "Myocardial infarction.", "rejected": shared + "Asthma."}]
    both, long_only = tmp_path / "pairs.jsonl", tmp_path / "long.jsonl"
    both.write_text("".join(json.dumps(r) + "\n" for r in rows))
    long_only.write_text(json.dumps(rows[1]) + "\n")
    cfg = cfg_for(tiny_model_dir, "train.stage=dpo", "data.max_length=64", "train.max_steps=1")
    loaded = load_model(str(tiny_model_dir), device="cpu", dtype="float32")
    tok, fmt = loaded.tokenizer, cfg.model.resolved_reasoning_format(loaded.source.reasoning_format)

    # The premise, through TRL's own collator: the long pair's truncated chosen and rejected are the same sequence.
    prompt = tok.apply_chat_template([{"role": "user", "content": "Chest pain?"}], tokenize=False, add_generation_prompt=True)
    long_pair = PreferencePair("long", prompt, rows[1]["chosen"], rows[1]["rejected"], "imported")
    assert first_difference(long_pair, tok) >= 64
    unfiltered = Dataset.from_list([{"prompt": trl_prompt(tok, prompt), "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows])
    args = rl.trl_args(cfg, tmp_path, "cpu", train_precision("cpu", "fp32", "auto", "lora"), False)
    trainer = rl.make_trainer(cfg, args, loaded, unfiltered, fmt, [])
    same = [torch.equal(*trainer.data_collator([ex])["input_ids"]) for ex in trainer.train_dataset]
    assert same == [False, True]

    dataset, counts, _ = rl.stage_data(cfg, [str(both)], tmp_path / "run", loaded, fmt)
    assert dataset["chosen"] == ["Myocardial infarction."]
    assert counts == {"train": 1, "val": 0, "imported": 1, "quarantined_pairs": 1, "undecided_pairs": 1}
    bad = [json.loads(line) for line in (tmp_path / "run/quarantine-pairs.jsonl").read_text().splitlines()]
    assert [(b["file"], b["line"], b["field"]) for b in bad] == [("imported pairs", "long", "rejected")]
    assert f"within data.max_length (64 tokens; they first differ at token {first_difference(long_pair, tok)})" in bad[0]["reason"]
    with pytest.raises(ConfigError, match="data.max_length: each of the 1 preference pairs has the same first 64 tokens"):
        rl.stage_data(cfg, [str(long_only)], tmp_path / "run2", loaded, fmt)
    dataset, counts, _ = rl.stage_data(cfg_for(tiny_model_dir, "train.stage=dpo", "data.max_length=512"), [str(both)],
                                       tmp_path / "run3", loaded, fmt)
    assert len(dataset) == 2 and counts["undecided_pairs"] == 0  # room enough: both pairs train


def test_sft_only_data_settings_are_named_not_dropped(tmp_path, tiny_model_dir):
    """data.loss_on and data.truncation are SFT's: the RL stages never read them, so a value given is logged as unused."""
    from medtune.train.rl import sft_only_settings

    cfg = cfg_for(tiny_model_dir, "train.stage=dpo", "data.loss_on=answer_only", "data.truncation=drop", "train.eval_steps=5")
    assert sft_only_settings(cfg) == ["train.eval_steps", "data.loss_on=answer_only", "data.truncation=drop"]
    assert sft_only_settings(cfg_for(tiny_model_dir, "train.stage=dpo")) == []



@pytest.mark.parametrize("template", ["chatml", "phi2"])
def test_orpo_and_dpo_screen_a_pair_at_the_positions_their_trainers_truncate(tmp_path, tiny_model_dir, template):
    """A pair that first differs at the last position max_length keeps, checked through each trainer's own collator.
    ChatML starts with the tokenizer's BOS: DPO and ORPO both keep the pair. phi-2's "Instruct:" template has no BOS,
    which ORPO puts in front itself: the pair shifts one right and is the same sequence twice under ORPO, so the ORPO
    stage quarantines it (it dropped such pairs for every template before: max_length - 1 for ORPO)."""
    from datasets import Dataset

    from medtune.models.load import load_model
    from medtune.models.precision import train_precision
    from medtune.models.registry import get_preset
    from medtune.train import rl
    from medtune.train.pairs import PreferencePair, first_difference, trl_prompt

    shared = "Key findings: crushing chest pain radiating to the left arm and diaphoresis. "
    row = {"id": "edge", "prompt": "Chest pain?", "chosen": shared + "Myocardial infarction.", "rejected": shared + "Asthma."}
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps(row) + "\n")
    loaded = load_model(str(tiny_model_dir), device="cpu", dtype="float32")
    tok = loaded.tokenizer
    if template == "phi2":
        tok.chat_template = get_preset("phi-2").chat_template
    prompt = tok.apply_chat_template([{"role": "user", "content": row["prompt"]}], tokenize=False, add_generation_prompt=True)
    at = first_difference(PreferencePair("edge", prompt, row["chosen"], row["rejected"], "imported"), tok)
    same = {}
    for stage in ("dpo", "orpo"):
        cfg = cfg_for(tiny_model_dir, f"train.stage={stage}", f"data.max_length={at + 1}", "train.max_steps=1")
        fmt = cfg.model.resolved_reasoning_format(loaded.source.reasoning_format)
        data = Dataset.from_list([{"prompt": trl_prompt(tok, prompt), "chosen": row["chosen"], "rejected": row["rejected"]}])
        args = rl.trl_args(cfg, tmp_path / stage, "cpu", train_precision("cpu", "fp32", "auto", "lora"), False)
        trainer = rl.make_trainer(cfg, args, loaded, data, fmt, [])
        example = trainer.train_dataset[0]
        if stage == "orpo":  # ORPO's rows carry their truncated sequences
            chosen, rejected = example["chosen_input_ids"], example["rejected_input_ids"]
        else:
            batch = trainer.data_collator([example])["input_ids"]
            chosen, rejected = batch[0].tolist(), batch[1].tolist()
        same[stage] = chosen == rejected
        if same[stage]:
            with pytest.raises(ConfigError, match="each of the 1 preference pairs has the same first"):
                rl.stage_data(cfg, [str(pairs)], tmp_path / f"run-{stage}", loaded, fmt)
        else:
            dataset, counts, _ = rl.stage_data(cfg, [str(pairs)], tmp_path / f"run-{stage}", loaded, fmt)
            assert len(dataset) == 1 and counts["undecided_pairs"] == 0
    assert same == {"dpo": False, "orpo": template == "phi2"}
