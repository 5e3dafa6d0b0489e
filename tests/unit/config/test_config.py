from pathlib import Path

import pytest
import yaml

from medtune.config import ConfigError, RunConfig, load_config, save_resolved
from medtune.config.load import config_hash, resolve_config_path

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


def test_cross_field_checks_always_run_and_hardware_checks_only_when_asked():
    with pytest.raises(ConfigError) as exc:  # no check_hardware: cross-field problems are still found
        load_config(None, ["train.early_stopping_patience=3", "data.sources=[a.jsonl]", "data.train_files=[b.jsonl]",
                           "eval.compare_base=true", "eval.num_samples=4", "synth.style=demo"])
    assert {p.path for p in exc.value.problems} == {"train.early_stopping_patience", "data.train_files",
                                                    "eval.compare_base", "synth.tasks"}
    load_config(None, ["train.method=qlora", "train.optimizer=adamw_8bit"])  # fine until the hardware is checked


def test_compact_with_the_demo_style_is_refused_naming_both_fields(tmp_path):
    """synth.compact shortens the cases style's vignettes; the demo style writes no vignette, so it would do nothing."""
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump({"synth": {"style": "demo", "tasks": ["diagnosis", "mcq"], "compact": True}}))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert [p.path for p in exc.value.problems] == ["synth.compact"]
    text = str(exc.value)
    assert text.startswith(str(path)) and "synth.style: demo" in text and "synth.style=cases" in text
    load_config(None, ["synth.compact=true"])  # the cases style (the default) takes it
    load_config(path, ["synth.compact=false"])


def test_unknown_model_base_is_reported_with_the_schema_problems():
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["model.base=llama-9000", "train.lora.r=0"])
    assert {p.path for p in exc.value.problems} == {"model.base", "train.lora.r"}
    assert "llama-9000" in str(exc.value) and "medtune models list" in str(exc.value)
    for fine in ("qwen3-0.6b", "someone/some-model", "smollm2-135m"):
        load_config(None, [f"model.base={fine}"])


def test_a_revision_of_a_model_without_revisions_is_refused_before_anything_runs(tiny_model_dir):
    """model.revision pins a Hub id; with the embedded model or a local folder it would be ignored, so it is refused."""
    for base in ("smollm2-135m", str(tiny_model_dir)):
        with pytest.raises(ConfigError) as exc:
            load_config(None, [f"model.base={base}", "model.revision=deadbeef"])
        assert [p.path for p in exc.value.problems] == ["model.revision"] and "has no revisions" in str(exc.value)
    load_config(None, ["model.base=HuggingFaceTB/SmolLM2-135M-Instruct", "model.revision=deadbeef"])


def test_a_folder_or_binary_file_is_a_one_line_error(tmp_path):
    binary = tmp_path / "weights.bin"
    binary.write_bytes(b"\x00\x01\xff" * 50)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    for bad, words in ((tmp_path, "is a folder"), (binary, "not a text file"), (latin, "not a text file"),
                       (tmp_path / "nope.yaml", "file not found")):
        with pytest.raises(ConfigError) as exc:
            load_config(bad)
        assert "\n" not in str(exc.value) and str(exc.value).startswith(str(bad)) and words in str(exc.value)


def test_packaged_recipe_by_name():
    assert resolve_config_path("quickstart").is_file()
    assert load_config("quickstart") == load_config(REPO / "configs" / "quickstart.yaml")
    assert resolve_config_path("my.yaml") == Path("my.yaml")


def test_sources_accept_a_path_or_a_mapping_and_lists_accept_commas():
    cfg = load_config(None, ["data.sources=[a.jsonl, {path: 'hf:o/n:en', format: medical_o1, cap: 5}]",
                             "export.gguf=f16, q8_0", "synth.tasks=mcq,diagnosis"])
    assert [(s.path, s.format, s.cap) for s in cfg.data.sources] == [("a.jsonl", "auto", None), ("hf:o/n:en", "medical_o1", 5)]
    assert cfg.export.gguf == ["f16", "q8_0"] and cfg.synth.tasks == ["mcq", "diagnosis"]
    with pytest.raises(ConfigError, match="data.sources.0.weight"):
        load_config(None, ["data.sources=[{path: a, weight: -1}]"])


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["train.max_steps=4"])
    path = save_resolved(cfg, tmp_path)
    again = load_config(path)
    assert again == cfg and config_hash(again) == config_hash(cfg)
    assert config_hash(RunConfig()) != config_hash(cfg)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    load_config(path)


def test_reasoning_format_auto_follows_the_model_and_a_setting_wins():
    """One resolution for training (SFT and RL stages) and `medtune data preview`."""
    assert load_config(None, []).model.resolved_reasoning_format("think") == "think"
    assert load_config(None, ["model.reasoning_format=plain"]).model.resolved_reasoning_format("think") == "plain"


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path):
    """YAML keeps the last of two equal keys: a second `train:` block would drop the first's max_steps unseen."""
    path = tmp_path / "dup.yaml"
    path.write_text("train:\n  max_steps: 4\ndata:\n  max_length: 64\ntrain:\n  lora:\n    r: 8\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "duplicate key 'train' (first on line 1)" in str(e.value) and "line 5" in str(e.value)
    nested = tmp_path / "nested.yaml"
    nested.write_text("train:\n  max_steps: 4\n  max_steps: 8\n")
    with pytest.raises(ConfigError, match="duplicate key 'max_steps'"):
        load_config(nested)
    anchors = tmp_path / "anchors.yaml"  # a merge key may repeat what it merges on purpose
    anchors.write_text("base: &b {r: 8, alpha: 16}\ntrain:\n  lora:\n    <<: *b\n    r: 16\n".replace("base: &b", "x-base: &b"))
    with pytest.raises(ConfigError, match="x-base"):  # an unknown top-level key is still reported, not a YAML error
        load_config(anchors)


@pytest.mark.parametrize(("override", "said"), [
    ("train.lora.r=[1", "not valid YAML"), ("train..r=5", "empty part"), ("=5", "empty part")])
def test_a_malformed_override_is_a_config_error_naming_it(override, said):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert override in str(e.value) and said in str(e.value)


def test_a_union_field_with_a_wrong_value_is_one_problem_naming_what_it_accepts():
    """pydantic reports one error per member of a union (`ids_file.str`, `ids_file.int`, ...): a user sees one field."""
    with pytest.raises(ConfigError) as e:
        load_config(None, ["data.sources=[{path: a.jsonl, options: {ids_file: [1, 2]}}]", "train.lora.target_modules=q_proj"])
    assert len(e.value.problems) == 2, str(e.value)
    text = str(e.value)
    assert "data.sources.0.options.ids_file: got [1, 2]; expected str, int, float or bool" in text
    assert "train.lora.target_modules: got 'q_proj'; expected list[str] or 'preset' or 'all-linear'" in text
    assert ".str:" not in text and "literal[" not in text
