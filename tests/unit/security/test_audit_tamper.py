"""Property test of `audit verify`: every single-byte edit, deleted, duplicated, swapped entry and
truncation of a sample log fails; the untouched log passes. Sessions: an event appended after the
server closed the log fails, and one left unsigned by a crash is never counted as signed."""

import base64
import hashlib
import hmac
import json

import pytest
from audit_helpers import crash, event, forge_event, open_log, paths
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.security.audit import (
    AuditError,
    canonical,
    checkpoint_body,
    entry_hash,
    key_fingerprint,
)
from medtune.security.audit_verify import verify_bytes, verify_log
from medtune.security.keyfiles import (
    load_or_create_secret,
    load_or_create_signing_key,
    load_public_key,
)


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


def _verify(tmp, head=True):
    p = paths(tmp)
    return verify_log(p["log"], load_public_key(p["pub"]), p["head"] if head else None)


def _cli_verify(tmp) -> tuple[int, str]:
    p = paths(tmp)
    r = CliRunner().invoke(app, ["audit", "verify", str(p["log"]), "--public-key", str(p["pub"]), "--head", str(p["head"])])
    return r.exit_code, " ".join(r.output.split())  # (rich wraps long lines)


def test_an_event_forged_after_a_clean_close_fails_and_is_never_signed(tmp_path):
    with open_log(tmp_path) as log:
        log.record(event(0))
    p = paths(tmp_path)
    clean = p["log"].read_bytes()
    seq = forge_event(p["log"])  # chained and hashed like a real one, after the closing checkpoint
    for rep in (_verify(tmp_path), _verify(tmp_path, head=False)):
        assert not rep.ok and rep.problems[0].startswith(f"line {seq}:") and "closing checkpoint" in rep.problems[0]
    assert verify_bytes(clean, load_public_key(p["pub"]), p["head"]).closed is True
    code, output = _cli_verify(tmp_path)
    assert code == 1 and f"line {seq}" in output, output
    with pytest.raises(AuditError, match=f"line {seq}"):  # a restarted server refuses to sign it
        open_log(tmp_path)


def test_dropping_the_closing_checkpoint_to_append_after_it_fails_with_the_head(tmp_path):
    with open_log(tmp_path) as log:
        log.record(event(0))
    p = paths(tmp_path)
    p["log"].write_bytes(b"".join(p["log"].read_bytes().splitlines(keepends=True)[:-1]))
    forge_event(p["log"])
    rep = _verify(tmp_path)
    assert not rep.ok and "truncated or rewritten" in rep.problems[0]
    rep = _verify(tmp_path, head=False)  # without the head file it reads as a crashed session, never a closed one
    assert rep.ok and rep.closed is False and rep.unsigned_events == 2  # the real event and the forged one


def test_a_tail_left_by_a_crash_is_adopted_but_never_vouched_for(tmp_path):
    log = open_log(tmp_path, every=100)
    log.record(event(0))
    log.record(event(1))
    crash(log)  # header 0, checkpoint 1, events 2 and 3, no closing checkpoint
    p = paths(tmp_path)
    assert forge_event(p["log"]) == 4  # nothing signs a crashed tail: this cannot be told from a real event
    rep = _verify(tmp_path)
    assert rep.ok and rep.unsigned_events == 3
    with open_log(tmp_path, every=100) as log:  # restart: adopts the tail, records it as unsigned
        log.record(event(2))
    code, output = _cli_verify(tmp_path)
    assert code == 0 and "4 events (1 signed)" in output and "not vouched for" in output and "seq 2-4" in output, output
    rep = _verify(tmp_path)
    assert rep.ok and rep.closed is True and rep.events == 4 and rep.unsigned_events == 0, rep.problems
    assert rep.adopted == [(2, 4)] and rep.adopted_events == 3 and rep.signed_events == 1
    lines = [json.loads(x) for x in p["log"].read_text().splitlines()]
    assert [(e["seq"], e.get("session"), e.get("adopted")) for e in lines if e["type"] == "checkpoint"] == [
        (1, "open", None), (5, "open", [2, 4]), (7, "close", None)]
    assert json.loads(p["head"].read_text())["session"] == "close"
    with open_log(tmp_path, every=100) as log:  # a later clean restart keeps reporting them
        log.record(event(3))
    rep = _verify(tmp_path)
    assert rep.ok and rep.adopted == [(2, 4)] and rep.signed_events == 2


def test_verify_tells_a_closed_log_from_an_open_or_crashed_one(tmp_path):
    log = open_log(tmp_path, every=100)
    log.record(event(0))
    rep = _verify(tmp_path)
    assert rep.ok and rep.closed is False and rep.unsigned_events == 1 and rep.signed_events == 0
    code, output = _cli_verify(tmp_path)
    assert code == 0 and "not closed" in output and "1 events after the last one" in output, output
    log.close()
    rep = _verify(tmp_path)
    assert rep.ok and rep.closed is True and rep.unsigned_events == 0 and rep.signed_events == 1
    code, output = _cli_verify(tmp_path)
    assert code == 0 and "closed by the server" in output and "not closed" not in output, output


def test_a_crash_right_after_a_checkpoint_adopts_nothing(tmp_path):
    log = open_log(tmp_path)
    log.record(event(0))
    log.record(event(1))  # every=2: a checkpoint follows at once
    crash(log)
    with open_log(tmp_path) as log:
        log.record(event(2))
    rep = _verify(tmp_path)
    assert rep.ok and rep.adopted == [] and rep.signed_events == rep.events == 3


def test_a_checkpoint_that_misstates_what_it_adopts_fails(tmp_path):
    log = open_log(tmp_path, every=100)
    log.record(event(0))
    crash(log)
    p = paths(tmp_path)
    lines = p["log"].read_bytes().splitlines(keepends=True)
    signing = load_or_create_signing_key(tmp_path / "secrets" / "signing.pem")
    last, log_id = json.loads(lines[-1]), json.loads(lines[0])["log_id"]
    for adopted in (None, [3, 3], [2, 3], [2, 2]):  # the event at seq 2 is the unsigned tail
        cp = {"type": "checkpoint", "log_id": log_id, "events": 1, "session": "open", "seq": 3, "time": last["time"],
              "prev": last["hash"]}
        if adopted:
            cp["adopted"] = adopted
        cp["signature"] = base64.b64encode(signing.sign(checkpoint_body(cp))).decode("ascii")
        cp["hash"] = entry_hash(cp)
        rep = verify_bytes(b"".join(lines) + canonical(cp) + b"\n", load_public_key(p["pub"]))
        assert rep.ok == (adopted == [2, 2]), (adopted, rep.problems)
        assert rep.ok or rep.problems[0].startswith("line 3:")


def _format1_log(tmp) -> bytes:
    """A log as the first format wrote it: checkpoints with no session marks, closed with a plain one."""
    hmac_key = load_or_create_secret(tmp / "secrets" / "hmac.key")
    signing = load_or_create_signing_key(tmp / "secrets" / "signing.pem")
    out, prev, events = [], "0" * 64, 0
    fields = [{"type": "header", "format": 1, "log_id": "0123456789abcdef", "signer": key_fingerprint(signing.public_key()),
               "hmac_key_id": hmac.new(hmac_key, b"medtune-audit-key-id", hashlib.sha256).hexdigest()[:16]},
              {"type": "checkpoint"}, {"type": "event", **event(0).model_dump(mode="json")}, {"type": "checkpoint"}]
    for seq, f in enumerate(fields):
        events += f["type"] == "event"
        entry = {**f, "seq": seq, "time": "2025-01-31T08:00:00.000000+00:00", "prev": prev}
        if f["type"] == "checkpoint":
            entry.update(log_id="0123456789abcdef", events=events)
            entry["signature"] = base64.b64encode(signing.sign(checkpoint_body(entry))).decode("ascii")
        entry["hash"] = prev = entry_hash(entry)
        out.append(canonical(entry) + b"\n")
    return b"".join(out)


def test_a_format_1_log_still_verifies_and_is_continued(tmp_path):
    p = paths(tmp_path)
    p["log"].parent.mkdir(parents=True)
    p["log"].write_bytes(_format1_log(tmp_path))
    rep = _verify(tmp_path, head=False)
    assert rep.ok and rep.format == 1 and rep.closed is None and rep.signed_events == 1, rep.problems
    with open_log(tmp_path) as log:  # a new server continues it, marking its own session
        log.record(event(1))
    rep = _verify(tmp_path)
    assert rep.ok and rep.closed is True and rep.events == 2 and rep.adopted == [] and rep.head_checked, rep.problems
    forge_event(p["log"])
    assert not _verify(tmp_path).ok
