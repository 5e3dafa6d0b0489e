import json

import pytest

from medtune.security.integrity import ModelIntegrityError, verify_model_file
from medtune.utils.io import sha256_file


def _export(tmp_path, with_digest=True):
    model = tmp_path / "medtune-run-q8_0.gguf"
    model.write_bytes(b"GGUF" + bytes(range(256)) * 8)
    entry = {"path": str(model), "bytes": model.stat().st_size}
    if with_digest:
        entry["sha256"] = sha256_file(model)
    (tmp_path / "export_summary.json").write_text(json.dumps({"files": {"q8_0": entry}}))
    return model


def test_matching_file_passes_and_reports_its_digest(tmp_path):
    model = _export(tmp_path)
    result = verify_model_file(model)
    assert result.checked == "sha256" and result.sha256 == sha256_file(model)


def test_edited_file_is_refused(tmp_path):
    model = _export(tmp_path)
    data = bytearray(model.read_bytes())
    data[100] ^= 1
    model.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="refusing to serve"):
        verify_model_file(model)


def test_manifest_without_digest_checks_size(tmp_path):
    model = _export(tmp_path, with_digest=False)
    assert verify_model_file(model).checked == "size"
    model.write_bytes(model.read_bytes() + b"x")
    with pytest.raises(ModelIntegrityError, match="bytes"):
        verify_model_file(model)


def test_unlisted_file_and_missing_manifest(tmp_path):
    _export(tmp_path)
    stranger = tmp_path / "other.gguf"
    stranger.write_bytes(b"GGUF")
    with pytest.raises(ModelIntegrityError, match="not listed"):
        verify_model_file(stranger)
    alone = tmp_path / "sub" / "m.gguf"
    alone.parent.mkdir()
    alone.write_bytes(b"GGUF")
    assert verify_model_file(alone).checked == "no manifest"
