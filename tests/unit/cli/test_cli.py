import pytest
import yaml
from typer.testing import CliRunner

from medtune.cli.main import app

runner = CliRunner()


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and "medtune" in r.output


def test_config_validate_lists_every_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"train": {"lora": {"r": -1}, "epochz": 3}, "eval": {"protocol": "vibes"}}))
    r = runner.invoke(app, ["config", "validate", str(bad)])
    assert r.exit_code == 2
    for path in ("train.lora.r", "train.epochz", "eval.protocol"):
        assert path in r.output


def test_config_validate_on_a_folder_or_binary_file_is_one_line(tmp_path):
    binary = tmp_path / "model.safetensors"
    binary.write_bytes(bytes(range(256)))
    for bad in (tmp_path, binary):
        r = runner.invoke(app, ["config", "validate", str(bad)])
        assert r.exit_code == 2 and "Traceback" not in r.output
        lines = [line for line in r.output.splitlines() if line.strip()]
        assert len(lines) == 1 and str(bad) in "".join(r.output.split()), r.output


def test_config_show_reads_the_packaged_quickstart_recipe():
    r = runner.invoke(app, ["config", "show", "quickstart"])
    assert r.exit_code == 0, r.output
    assert yaml.safe_load(r.output)["synth"]["style"] == "demo"


def test_config_show_applies_overrides():
    r = runner.invoke(app, ["config", "show", "--", "train.lora.r=4"])
    assert r.exit_code == 0, r.output
    assert yaml.safe_load(r.output)["train"]["lora"]["r"] == 4


def test_every_command_has_help():
    for cmd in (["--help"], ["doctor", "--help"], ["config", "--help"], ["models", "--help"], ["quickstart", "--help"],
                ["run", "--help"], ["synth", "--help"], ["synth", "validate-kb", "--help"], ["eval", "run", "--help"],
                ["export", "--help"], ["merge", "--help"], ["data", "import", "--help"], ["train", "--help"]):
        r = runner.invoke(app, cmd)
        assert r.exit_code == 0, (cmd, r.output)


@pytest.mark.parametrize("error", ["data", "config"])
def test_a_user_error_that_escapes_its_command_is_one_line_and_exit_2(error, monkeypatch, capsys):
    from medtune.cli import main as cli_main
    from medtune.config.load import ConfigError, ConfigProblem
    from medtune.data.importers import DataError

    raised = {"data": DataError("cases.jsonl: line 3 field 'answer': missing"),
              "config": ConfigError([ConfigProblem("train.lora.r", "must be > 0", "set it to 8")], "run.yaml")}[error]

    def command() -> None:
        raise raised

    monkeypatch.setattr(cli_main, "app", command)
    with pytest.raises(SystemExit) as exc:
        cli_main.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: ") and "Traceback" not in err
    if error == "data":
        assert err == "error: cases.jsonl: line 3 field 'answer': missing\n"
    monkeypatch.setattr(cli_main, "app", lambda: 1 / 0)  # a bug is not a user error: it keeps its traceback
    with pytest.raises(ZeroDivisionError):
        cli_main.main()


def test_an_output_path_that_cannot_be_written_is_one_error_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    """An OSError naming a path (an output under a file, a folder where a file goes) is the user's to fix: exit 2."""
    import sys

    from medtune.cli.main import main

    records = tmp_path / "records.jsonl"
    records.write_text('{"id": "a", "source": "t", "task": "open", "question": "Q?", "answer": {"text": "A"}}\n')
    monkeypatch.setattr(sys, "argv", ["medtune", "data", "stats", str(records), "--json", str(records / "stats.json")])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err and str(records) in err


def test_eval_run_without_a_benchmark_is_one_error_line():
    r = runner.invoke(app, ["eval", "run", "smollm2-135m"])
    assert r.exit_code == 2 and "no benchmarks given" in r.output, r.output


def test_export_verify_and_merge_refuse_what_they_would_ignore(tmp_path):
    """`export verify` compares the files given with --against; `merge` reads the base from the run's manifest:
    a flag or override that changes nothing there is refused, and a missing file is named (not a library traceback)."""
    gguf = tmp_path / "m-q8_0.gguf"
    gguf.write_bytes(b"GGUF")
    (tmp_path / "empty").mkdir()
    cases = [(["export", "verify", str(gguf), "--gguf", "f16"], "--gguf"),
             (["export", "verify", str(gguf), "export.gguf=bf16"], "export.gguf=bf16"),
             (["export", "verify", str(tmp_path / "nosuch.gguf"), "--against", str(tmp_path / "empty")], "no such file"),
             (["export", "verify", str(gguf), "--against", str(tmp_path / "empty")], "not a Hugging Face model folder"),
             (["merge", str(tmp_path), "model.base=smollm2-135m"], "model.base=smollm2-135m")]
    for args, said in cases:
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and said in r.output, (args, r.output)


def test_a_hyphenated_override_is_named_as_one_with_its_spelling(monkeypatch, capsys):
    """`eval.max-new-tokens=5` was taken for a model name ("Unknown model ..."): the fix is the field's spelling."""
    import sys

    from medtune.cli.main import main

    monkeypatch.setattr(sys, "argv", ["medtune", "eval", "run", "-b", "dev_vignettes", "eval.max-new-tokens=5"])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and "eval.max_new_tokens=5" in err and "Unknown model" not in err, err
