from pathlib import Path

import pytest
import yaml

from medtune.config import ConfigError, RunConfig, load_config, save_resolved
from medtune.config.load import config_hash

REPO = Path(__file__).resolve().parents[3]


def test_defaults_and_overrides():
    cfg = load_config(None, ["train.lora.r=8", "train.lora.target_modules=[q_proj,v_proj]", "model.base=phi-2"])
    assert cfg.train.lora.r == 8
    assert cfg.train.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.model.base == "phi-2"


def test_three_mistakes_reported_at_once(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({
        "train": {"lora": {"r": 0}, "learning_rat": 1e-4, "scheduler": "wavy"},
    }))
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    paths = {p.path for p in exc.value.problems}
    assert paths == {"train.lora.r", "train.learning_rat", "train.scheduler"}
    text = str(exc.value)
    assert "fix:" in text and str(bad) in text


def test_yaml_syntax_error_names_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lora: [1, 2\n")
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    assert "line" in exc.value.problems[0].path


def test_qlora_on_cpu_is_a_config_error():
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["train.method=qlora"], check_hardware=True, cuda_available=False)
    assert exc.value.problems[0].path == "train.method"
    assert "CUDA" in exc.value.problems[0].message
    load_config(None, ["train.method=qlora"], check_hardware=True, cuda_available=True)


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["train.max_steps=4"])
    path = save_resolved(cfg, tmp_path)
    again = load_config(path)
    assert again == cfg and config_hash(again) == config_hash(cfg)
    assert config_hash(RunConfig()) != config_hash(cfg)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    load_config(path)
