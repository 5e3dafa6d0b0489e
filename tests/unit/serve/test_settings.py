"""Settings: every field declared once in ServeSection; precedence flags > MEDTUNE_ env > config > defaults."""

from __future__ import annotations

import pytest

from medtune.config import ConfigError, RunConfig
from medtune.config.sections.serve import ServeSection
from medtune.serve import serve_command
from medtune.serve.settings import ServeSettings, load_settings


def test_settings_reuse_the_section_fields_without_redeclaring_them():
    assert ServeSettings.model_fields.keys() == ServeSection.model_fields.keys()
    for name, field in ServeSection.model_fields.items():
        mine = ServeSettings.model_fields[name]
        assert (mine.default, mine.description) == (field.default, field.description), name
        assert field.description, f"{name} has no help text"
    assert "model" not in ServeSettings.__dict__.get("__annotations__", {})


def test_precedence(monkeypatch):
    section = RunConfig.model_validate({"serve": {"port": 8100, "slots": 2, "host": "127.0.0.2"}}).serve
    monkeypatch.setenv("MEDTUNE_PORT", "8200")
    monkeypatch.setenv("MEDTUNE_DATA_ROOT", "/elsewhere")  # other medtune variables are not serve settings
    s = load_settings(section, {"slots": 6, "host": None})
    assert (s.port, s.slots, s.host) == (8200, 6, "127.0.0.2")
    assert load_settings().host == "127.0.0.1"  # loopback unless told otherwise


def test_bad_values_name_the_field_and_the_variable(monkeypatch):
    monkeypatch.setenv("MEDTUNE_PORT", "eighty")
    with pytest.raises(ConfigError, match="serve.port.*MEDTUNE_PORT"):
        load_settings()
    monkeypatch.delenv("MEDTUNE_PORT")
    with pytest.raises(ConfigError, match="endpoint"):
        load_settings(None, {"backend": "openai"})
    with pytest.raises(ConfigError, match="max_tokens_default"):
        load_settings(None, {"max_tokens_default": 4096, "max_tokens_ceiling": 100})


def test_serve_command_is_the_exact_cli():
    section = ServeSection(port=9000, slots=4, model="runs/a/export/m-q4_k_m.gguf")
    assert serve_command(section) == ["medtune", "serve", "runs/a/export/m-q4_k_m.gguf", "--port", "9000", "--slots", "4"]
    with pytest.raises(ValueError, match="no model"):
        serve_command(ServeSection())


def test_startup_logs_what_is_served_and_its_sha256(tiny_model_dir, caplog):
    from serve_helpers import live_server, make_app

    caplog.set_level("INFO", logger="medtune.serve")
    with live_server(make_app(tiny_model_dir)):
        pass
    started = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("serving tiny"))
    assert f"sha256 {'ab' * 32}" in started and "run run-test" in started and "Research use only" in started


def test_identity_digests_the_served_weights(tiny_model_dir, tmp_path):
    from medtune.serve.backends.hf import build_transformers
    from medtune.serve.identity import digest_files
    from medtune.utils.io import sha256_file

    backend, identity = build_transformers(str(tiny_model_dir), ServeSection(slots=2))
    assert identity.sha256 == sha256_file(tiny_model_dir / "model.safetensors")
    assert identity.served_name == tiny_model_dir.name and backend.parallel == 2
    a, b = tmp_path / "model-00001.safetensors", tmp_path / "model-00002.safetensors"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    combined, files = digest_files([b, a])
    assert list(files) == [str(a), str(b)] and combined not in files.values()
    b.write_bytes(b"tw0")
    assert digest_files([a, b])[0] != combined  # any shard's change changes the digest


def test_the_security_section_is_nested_and_merged_field_by_field(monkeypatch, tmp_path):
    section = RunConfig.model_validate({"serve": {"security": {"phi_policy": "block", "requests_per_minute": 7}}}).serve
    monkeypatch.setenv("MEDTUNE_SECURITY__REQUESTS_PER_MINUTE", "9")
    s = load_settings(section, {"security": {"keys_file": str(tmp_path / "k.json"), "tls_cert": None}})
    # the file's phi_policy survives an environment variable and a flag for other security fields
    assert (s.security.phi_policy, s.security.requests_per_minute, s.security.keys_file) == ("block", 9, str(tmp_path / "k.json"))
    monkeypatch.setenv("MEDTUNE_SECURITY__MAX_N", "zero")
    with pytest.raises(ConfigError, match="serve.security.max_n.*MEDTUNE_SECURITY__MAX_N"):
        load_settings()
    assert "max_tokens_ceiling" not in ServeSection.model_fields["security"].annotation.model_fields  # declared once


def test_serve_command_carries_the_security_flags():
    section = ServeSection(model="m.gguf", host="0.0.0.0", security={"tls_cert": "/etc/c.pem", "tls_key": "/etc/k.pem",
                                                                     "phi_policy": "block", "requests_per_minute": 5})
    argv = serve_command(section)
    assert argv == ["medtune", "serve", "m.gguf", "--host", "0.0.0.0", "--tls-cert", "/etc/c.pem", "--tls-key",
                    "/etc/k.pem", "--phi-policy", "block"]  # other security fields: -c CONFIG or MEDTUNE_SECURITY__*


def test_the_default_analyze_samples_is_within_the_cap_a_client_gets():
    """Out of the box a request without `samples` generates no more answers than a client may ask for (4 each); the
    two stay separate settings (the operator's default, the clients' cap), so max_n 1 remains a valid config."""
    section = ServeSection()
    assert section.analyze_samples <= section.security.max_n
    assert ServeSection(security={"max_n": 1}).security.max_n == 1


def test_an_upstream_off_this_host_must_be_https():
    """Prompts (all the patient text under phi_policy pass) go to the upstream: plain HTTP only to this host, as
    for medtune's own address (docs/security.md: TLS off loopback)."""
    from pydantic import ValidationError

    for url in ("http://127.0.0.1:8001/v1", "http://localhost:8001/v1", "http://[::1]:8001/v1", "https://gpu.ward.local/v1"):
        assert ServeSection(backend="openai", endpoint=url, model="m").endpoint == url
    for url, said in (("http://10.0.0.5:8001/v1", "refusing plain HTTP to the upstream 10.0.0.5"),
                      ("http://gpu.ward.local/v1", "refusing plain HTTP to the upstream gpu.ward.local"),
                      ("ftp://127.0.0.1/v1", "not an http:// or https:// URL")):
        with pytest.raises(ValidationError, match=said):
            ServeSection(backend="openai", endpoint=url, model="m")


def test_the_upstream_refusal_names_its_field_in_a_config_file(tmp_path):
    """The refusal names serve.endpoint and the file, without pydantic's "Value error," prefix."""
    from typer.testing import CliRunner

    from medtune.cli.main import app

    cfg = tmp_path / "up.yaml"
    cfg.write_text("serve:\n  backend: openai\n  model: m\n  endpoint: http://10.0.0.5:8001/v1\n")
    result = CliRunner().invoke(app, ["config", "show", str(cfg)], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "serve.endpoint: refusing plain HTTP to the upstream 10.0.0.5" in result.output, result.output
