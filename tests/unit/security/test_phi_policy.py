import json
import logging

import pytest
from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.security.phi.detector import PhiDetector
from medtune.security.phi.policy import (
    PhiBlocked,
    PhiLogFilter,
    apply_phi_policy,
    apply_to_messages,
)

NOTE = "Maria Gonzalez (DOB 03/14/1952) has Graves disease; call (217) 555-0143."


@pytest.fixture(scope="module")
def det():
    return PhiDetector(use_presidio=False)


def test_redact_block_pass(det):
    red = apply_phi_policy(NOTE, "redact", det)
    assert "Gonzalez" not in red.text and "Graves disease" in red.text
    assert red.counts == {"NAME": 1, "DATE": 1, "PHONE": 1}
    with pytest.raises(PhiBlocked) as info:
        apply_phi_policy(NOTE, "block", det)
    assert info.value.status == 422 and info.value.types == ["DATE", "NAME", "PHONE"]
    assert "DATE, NAME, PHONE" in str(info.value) and "Gonzalez" not in str(info.value)
    passed = apply_phi_policy(NOTE, "pass", det)
    assert passed.text == NOTE and passed.counts == red.counts
    assert apply_phi_policy("Graves disease, TSH 0.01 mIU/L", "block", det).counts == {}
    with pytest.raises(ValueError):
        apply_phi_policy(NOTE, "ignore", det)


def test_chat_messages(det):
    messages = [{"role": "system", "content": "You are careful."},
                {"role": "user", "content": [{"type": "text", "text": NOTE}]},
                {"role": "user", "content": "SSN 123-45-6789"}]
    out, counts = apply_to_messages(messages, "redact", det)
    assert "Gonzalez" not in json.dumps(out) and counts["SSN"] == 1 and out[0] == messages[0]
    with pytest.raises(PhiBlocked) as info:
        apply_to_messages(messages, "block", det)
    assert info.value.types == ["DATE", "NAME", "PHONE", "SSN"]


def test_log_filter_redacts_records(det, caplog):
    logger = logging.getLogger("medtune.test.phi")
    logger.addFilter(PhiLogFilter(det))
    with caplog.at_level(logging.INFO, logger="medtune.test.phi"):
        logger.info("request body: %s", NOTE)
    assert "Gonzalez" not in caplog.text and "[NAME]" in caplog.text


def test_scan_cli(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": 1, "text": NOTE}) + "\n\n" + json.dumps({"id": "b", "text": "No PHI."}) + "\n")
    r = CliRunner().invoke(app, ["phi", "scan", str(src), "--out", str(out), "--no-presidio"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == [1, "b"]
    assert "Gonzalez" not in rows[0]["redacted"] and rows[1]["spans"] == []
    span = rows[0]["spans"][0]
    assert set(span) == {"start", "end", "type"} and NOTE[span["start"]:span["end"]] == "Maria Gonzalez"


@pytest.mark.parametrize("line,message", [
    ("{not json", "in.jsonl:2: bad JSON"),
    ('{"id": 2}', "in.jsonl:2: field `text`"),
    ('{"text": "x"}', "in.jsonl:2: field `id`"),
    ("[1, 2]", "in.jsonl:2: not a JSON object"),
])
def test_scan_cli_bad_input_names_file_and_line_and_writes_nothing(tmp_path, line, message):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": 1, "text": NOTE}) + "\n" + line + "\n")
    r = CliRunner().invoke(app, ["phi", "scan", str(src), "--out", str(out), "--no-presidio"])
    assert r.exit_code == 2 and message in r.output.replace("\n", ""), r.output
    assert not out.exists()


def test_scan_cli_refuses_to_overwrite_its_input(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": 1, "text": NOTE}) + "\n")
    r = CliRunner().invoke(app, ["phi", "scan", str(src), "--out", str(src), "--no-presidio"])
    assert r.exit_code == 2 and "input file" in r.output
