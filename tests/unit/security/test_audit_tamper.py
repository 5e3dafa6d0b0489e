"""Property test of `audit verify`: every single-byte edit, deleted, duplicated, swapped entry and
truncation of a sample log fails; the untouched log passes."""

import pytest
from audit_helpers import event, open_log, paths
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.security.audit_verify import verify_bytes
from medtune.security.keyfiles import load_public_key


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audit")
    with open_log(tmp, every=2) as log:
        for i in range(5):
            log.record(event(i, phi={} if i % 2 else {"NAME": 1}))
    p = paths(tmp)
    return {"data": p["log"].read_bytes(), "key": load_public_key(p["pub"]), "head": p["head"], "paths": p}


def _ok(sample, data: bytes) -> bool:
    return verify_bytes(data, sample["key"], sample["head"]).ok


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def test_untouched_log_verifies(sample):
    rep = verify_bytes(sample["data"], sample["key"], sample["head"])
    assert rep.ok and rep.events == 5 and rep.head_checked, rep.problems
    assert len(_lines(sample["data"])) == 10  # header, checkpoint, 2 events, cp, 2 events, cp, event, cp on close


def test_every_single_byte_flip_fails(sample):
    data = sample["data"]
    for i in range(len(data)):
        edited = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
        assert not _ok(sample, edited), (i, data[max(0, i - 20):i + 20])


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_any_single_byte_replacement_fails(sample, data):
    raw = sample["data"]
    i = data.draw(st.integers(0, len(raw) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != raw[i]))
    assert not _ok(sample, raw[:i] + bytes([value]) + raw[i + 1:])


def test_deleted_duplicated_and_swapped_entries_fail(sample):
    lines = _lines(sample["data"])
    n = len(lines)
    for i in range(n):
        assert not _ok(sample, b"".join(lines[:i] + lines[i + 1:])), f"delete {i}"
        for j in range(n + 1):
            dup = lines[:j] + [lines[i]] + lines[j:]
            assert not _ok(sample, b"".join(dup)), f"duplicate {i} at {j}"
        for j in range(i + 1, n):
            swapped = list(lines)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            assert not _ok(sample, b"".join(swapped)), f"swap {i} {j}"


def test_every_truncation_fails(sample):
    data = sample["data"]
    for cut in range(len(data)):
        assert not _ok(sample, data[:cut]), cut


def test_truncation_past_the_last_checkpoint_fails_in_the_cli(sample, tmp_path):
    p = sample["paths"]
    lines = _lines(sample["data"])
    cut = tmp_path / "audit.jsonl"
    cut.write_bytes(b"".join(lines[:-1]))  # drop the final checkpoint: every remaining line is valid
    r = CliRunner().invoke(app, ["audit", "verify", str(cut), "--public-key", str(p["pub"]), "--head", str(p["head"])])
    assert r.exit_code == 1 and "truncated" in r.output, r.output
