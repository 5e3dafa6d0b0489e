import asyncio
import json
import os
import stat
import threading

import pytest
from audit_helpers import event, open_log, paths
from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.config.sections.security import SecuritySection
from medtune.security.audit import AuditError, AuditEvent, AuditLog
from medtune.security.audit_verify import read_events, verify_log
from medtune.security.keyfiles import load_public_key


def _verify(tmp):
    p = paths(tmp)
    return verify_log(p["log"], load_public_key(p["pub"]), p["head"])


def test_events_are_chained_checkpointed_and_verify(tmp_path):
    with open_log(tmp_path, every=3) as log:
        for i in range(7):
            entry = log.record(event(i))
            assert entry["seq"] > 0 and len(entry["prev"]) == 64
    lines = [json.loads(x) for x in paths(tmp_path)["log"].read_text().splitlines()]
    kinds = [e["type"] for e in lines]
    assert kinds[:2] == ["header", "checkpoint"] and kinds.count("event") == 7
    assert kinds.count("checkpoint") == 1 + 2 + 1  # start, after 3 and 6 events, on close
    assert all(b["prev"] == a["hash"] for a, b in zip(lines, lines[1:]))
    rep = _verify(tmp_path)
    assert rep.ok and rep.events == 7 and rep.unsigned_events == 0 and rep.head_checked
    assert stat.S_IMODE(os.stat(paths(tmp_path)["log"]).st_mode) == 0o600


def test_no_text_only_digests_and_counts(tmp_path):
    note = "Maria Gonzalez, MRN 00123456, seen 03/14/2021"
    with open_log(tmp_path) as log:
        d = log.digest(note)
        log.record(event(0, input_hmac=d))
        assert d != log.digest(note + " ") and len(d) == 64
    text = paths(tmp_path)["log"].read_text()
    assert "Gonzalez" not in text and "00123456" not in text and d in text
    with pytest.raises(ValueError):  # free text cannot enter through the route or request id
        event(1, route="/v1/chat?patient=Maria Gonzalez")
    with pytest.raises(ValueError):
        AuditEvent(route="/x", request_id="r", status=200, latency_ms=1, note="Maria")


def test_resume_continues_the_chain_and_refuses_a_tampered_log(tmp_path):
    with open_log(tmp_path) as log:
        log.record(event(0))
    with open_log(tmp_path) as log:  # restart: same log id, seq continues
        log.record(event(1))
    rep = _verify(tmp_path)
    assert rep.ok and rep.events == 2
    log_path = paths(tmp_path)["log"]
    log_path.write_text(log_path.read_text().replace('"status":200', '"status":201', 1))
    with pytest.raises(AuditError, match="does not verify"):
        open_log(tmp_path)


def test_one_writer_process_per_log(tmp_path):
    with open_log(tmp_path):
        with pytest.raises(AuditError, match="another process"):
            open_log(tmp_path)


def test_write_failure_raises_and_keeps_the_log_valid(tmp_path, monkeypatch):
    log = open_log(tmp_path)
    log.record(event(0))
    real_fsync, failures = os.fsync, []

    def fail_once(fd):
        if not failures:
            failures.append(fd)
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fail_once)
    with pytest.raises(AuditError, match="must fail"):
        log.record(event(1))
    log.record(event(2))  # the unsynced line was cut off; the chain goes on
    log.close()
    rep = _verify(tmp_path)
    assert rep.ok and rep.events == 2, rep.problems
    assert [e["request_id"] for e in read_events(paths(tmp_path)["log"])] == ["req-0", "req-2"]


def test_unrecoverable_write_failure_refuses_every_later_event(tmp_path, monkeypatch):
    log = open_log(tmp_path)

    def broken(*args):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    monkeypatch.setattr(os, "ftruncate", broken)
    for i in range(2):
        with pytest.raises(AuditError):
            log.record(event(i))
    monkeypatch.undo()
    with pytest.raises(AuditError, match="unusable"):
        log.record(event(3))


def test_threads_and_asyncio_write_one_clean_chain(tmp_path):
    log = open_log(tmp_path, every=16)

    def worker(t):
        for i in range(25):
            log.record(event(1000 * t + i))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()

    async def many():
        await asyncio.gather(*(log.arecord(event(9000 + i)) for i in range(50)))

    asyncio.run(many())
    for t in threads:
        t.join()
    log.close()
    rep = _verify(tmp_path)
    assert rep.ok and rep.events == 6 * 25 + 50
    ids = [e["request_id"] for e in read_events(paths(tmp_path)["log"])]
    assert len(ids) == len(set(ids)) == 200


def test_periodic_checkpoint_by_time(tmp_path):
    with open_log(tmp_path, every=1000, seconds=1e-9) as log:
        log.record(event(0))
        log.record(event(1))
    lines = [json.loads(x) for x in paths(tmp_path)["log"].read_text().splitlines()]
    assert [(e["type"], e.get("session")) for e in lines] == [  # close marks the end even with nothing unsigned
        ("header", None), ("checkpoint", "open"), ("event", None), ("checkpoint", None), ("event", None),
        ("checkpoint", None), ("checkpoint", "close")]


def test_open_from_settings_keeps_keys_outside_and_private(tmp_path):
    sec = SecuritySection(audit_dir=str(tmp_path / "audit"), audit_hmac_key=str(tmp_path / "keys" / "h.key"),
                          audit_signing_key=str(tmp_path / "keys" / "s.pem"))
    with AuditLog.open_from_settings(sec) as log:
        log.record(event(0))
    for name in ("h.key", "s.pem", "s.pem.head.json"):
        assert stat.S_IMODE(os.stat(tmp_path / "keys" / name).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path / "audit")) == ["audit.jsonl"]


def test_read_events_filters_by_time_and_key(tmp_path):
    with open_log(tmp_path) as log:
        log.record(event(0, key_id="aaaaaaaaaaaa"))
        log.record(event(1, key_id="bbbbbbbbbbbb"))
    all_events = read_events(paths(tmp_path)["log"])
    assert [e["key_id"] for e in all_events] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]
    assert [e["request_id"] for e in read_events(paths(tmp_path)["log"], key_id="bbbbbbbbbbbb")] == ["req-1"]
    assert read_events(paths(tmp_path)["log"], since="2999-01-01") == []
    assert len(read_events(paths(tmp_path)["log"], since=all_events[1]["time"])) == 1


def test_cli_verify_and_show(tmp_path):
    with open_log(tmp_path) as log:
        for i in range(3):
            log.record(event(i))
    p = paths(tmp_path)
    runner = CliRunner()
    args = ["audit", "verify", str(p["log"]), "--public-key", str(p["pub"]), "--head", str(p["head"])]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0 and "verified" in ok.output and "3 events" in ok.output, ok.output
    shown = runner.invoke(app, ["audit", "show", str(p["log"]), "--key", "0123456789ab", "--json"])
    assert shown.exit_code == 0 and len(shown.stdout.strip().splitlines()) == 3
    table = runner.invoke(app, ["audit", "show", str(p["log"].parent)])
    assert table.exit_code == 0 and "req-2" in table.output
    assert runner.invoke(app, ["audit", "show", str(p["log"]), "--since", "yesterday"]).exit_code == 2
    other_key = tmp_path / "other.pem"
    from medtune.security.keyfiles import load_or_create_signing_key
    load_or_create_signing_key(other_key)
    bad = runner.invoke(app, ["audit", "verify", str(p["log"]), "--public-key", str(other_key) + ".pub", "--no-head"])
    assert bad.exit_code == 1 and "trusted key" in bad.output
    assert runner.invoke(app, ["audit", "verify", str(tmp_path / "nope.jsonl")]).exit_code == 2


def test_cli_verify_finds_the_head_file_beside_the_key_it_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no head file under the default key path
    with open_log(tmp_path) as log:
        for i in range(3):
            log.record(event(i))
    p = paths(tmp_path)
    cut = tmp_path / "cut.jsonl"  # back past the closing checkpoint: every line left is valid
    cut.write_bytes(b"".join(p["log"].read_bytes().splitlines(keepends=True)[:-1]))
    runner = CliRunner()
    for key in (p["pub"], tmp_path / "secrets" / "signing.pem"):  # the .pub, or the private key it belongs to
        r = runner.invoke(app, ["audit", "verify", str(cut), "--public-key", str(key)])
        assert r.exit_code == 1 and "truncated" in r.output, r.output
    whole = runner.invoke(app, ["audit", "verify", str(p["log"]), "--public-key", str(p["pub"])])
    assert whole.exit_code == 0 and "head not checked" not in whole.output, whole.output
    assert runner.invoke(app, ["audit", "verify", str(cut), "--public-key", str(p["pub"]), "--no-head"]).exit_code == 0


def _damage(path, n: int, drop: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    entry = json.loads(lines[n])
    del entry[drop]
    lines[n] = json.dumps(entry) + "\n"
    path.write_text("".join(lines))


def test_a_damaged_event_line_is_reported_never_a_crash(tmp_path):
    with open_log(tmp_path, every=100) as log:
        for i in range(3):
            log.record(event(i))
    path = paths(tmp_path)["log"]  # header 0, checkpoint 1, events 2-4
    _damage(path, 2, "time")
    _damage(path, 3, "route")
    with open(path, "a") as f:
        f.write("{not json\n")
    for since in (None, "2000-01-01"):
        problems: list[str] = []
        events = read_events(path, since=since, problems=problems)
        assert [e["request_id"] for e in events] == ["req-2"]
        assert [x.split(": ", 1)[1] for x in problems] == [
            "line 2: damaged event, missing field 'time'", "line 3: damaged event, missing field 'route'",
            "line 6: not a JSON line"], problems
        assert all(x.startswith(f"{path}: ") for x in problems)
    assert [e["request_id"] for e in read_events(path, since="2000-01-01")] == ["req-2"]  # the server's reader
    runner = CliRunner()
    for args in ([], ["--since", "2000-01-01"], ["--json"]):
        r = runner.invoke(app, ["audit", "show", str(path), *args])
        out = " ".join(r.output.split())
        assert r.exit_code == 0 and "req-2" in out and "missing field 'route'" in out and "line 2" in out, out
    rep = verify_log(path, load_public_key(paths(tmp_path)["pub"]))
    assert not rep.ok and rep.problems[0].startswith("line 2:")


def test_a_missing_public_key_beside_the_signing_key_is_written_again(tmp_path):
    """A start that stopped after writing the private key (or a .pub deleted) left verifiers without their default
    trusted key for good: the next start writes it again, from the private key."""
    from cryptography.hazmat.primitives import serialization

    from medtune.security.keyfiles import (
        load_or_create_signing_key,
        load_public_key,
        public_key_path,
    )

    key_path = tmp_path / "signing.pem"
    key = load_or_create_signing_key(key_path)
    public_key_path(key_path).unlink()
    assert load_or_create_signing_key(key_path).private_bytes_raw() == key.private_bytes_raw()
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert load_public_key(public_key_path(key_path)).public_bytes(*raw) == key.public_key().public_bytes(*raw)


def test_a_new_signing_key_replaces_an_old_keys_public_file(tmp_path):
    """Rotation that deletes only signing.pem must not leave the old key's .pub as the verifiers' default."""
    from cryptography.hazmat.primitives import serialization

    from medtune.security.keyfiles import (
        load_or_create_signing_key,
        load_public_key,
        public_key_path,
    )

    key_path = tmp_path / "signing.pem"
    load_or_create_signing_key(key_path)
    key_path.unlink()
    new = load_or_create_signing_key(key_path)
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert load_public_key(public_key_path(key_path)).public_bytes(*raw) == new.public_key().public_bytes(*raw)
