import json
import os
import stat

import pytest
from typer.testing import CliRunner

from medtune.cli.main import app
from medtune.security import SecurityError
from medtune.security import keys as keys_mod
from medtune.security.keys import KeyStore, Principal, Role, RouteClass, parse_key

FAST_KDF = {"alg": "scrypt", "n": 2**10, "r": 8, "p": 1, "dklen": 32}


@pytest.fixture(autouse=True)
def _fast_scrypt(monkeypatch):
    # the stored parameters travel with each hash; tests use a cheaper n than production
    monkeypatch.setattr(keys_mod, "SCRYPT_DEFAULTS", FAST_KDF)


@pytest.fixture()
def store(tmp_path):
    return KeyStore(tmp_path / "keys.json")


def test_create_authenticates_and_stores_only_a_salted_hash(store):
    key, rec = store.create("alice", "clinician")
    assert store.authenticate(key) == Principal(rec.id, "alice", Role.CLINICIAN)
    text = store.path.read_text()
    assert key not in text and parse_key(key)[1] not in text
    saved = json.loads(text)["keys"][0]
    assert saved["kdf"]["alg"] == "scrypt" and saved["kdf"]["n"] == 2**10 and saved["kdf"]["salt"]
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600


def test_wrong_malformed_and_foreign_keys_fail(store):
    key, _ = store.create("alice", "clinician")
    key_id, secret = parse_key(key)
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for bad in (None, "", "Bearer " + key, key + "x", f"mt_{key_id}_{flipped}", f"mt_000000000000_{secret}"):
        assert store.authenticate(bad) is None, bad


def _count_compare(monkeypatch):
    calls = []
    real = keys_mod.hmac.compare_digest

    def counting(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys_mod.hmac, "compare_digest", counting)
    return calls


def test_every_stored_key_is_compared_no_early_exit(store, monkeypatch):
    made = [store.create(f"user{i}", "clinician") for i in range(5)]
    counts = {}
    for label, presented in (("first", made[0][0]), ("last", made[-1][0]),
                             ("wrong", f"mt_{made[2][1].id}_{'Z' * 43}"), ("junk", "nope")):
        calls = _count_compare(monkeypatch)
        store.authenticate(presented)
        counts[label] = len(calls)
        monkeypatch.undo()
        monkeypatch.setattr(keys_mod, "SCRYPT_DEFAULTS", FAST_KDF)
    # the cheap pass compares against all 5 entries on every request, whatever the key
    assert min(counts.values()) >= 5
    # a first-time match on the first entry costs exactly what a match on the last one, or a miss, costs
    assert counts["first"] == counts["last"] == counts["wrong"]
    # second request with the same key: the cheap pass only, still one comparison per entry
    calls = _count_compare(monkeypatch)
    assert store.authenticate(made[0][0]) is not None
    assert len(calls) == 5


def test_scrypt_runs_once_per_key_then_cached(store, monkeypatch):
    key, _ = store.create("alice", "clinician")
    derived = []
    real = keys_mod.derive
    monkeypatch.setattr(keys_mod, "derive", lambda s, k: derived.append(1) or real(s, k))
    for _ in range(5):
        assert store.authenticate(key) is not None
    assert len(derived) == 1
    store.authenticate(f"mt_{'a' * 12}_{'B' * 43}")  # unknown id: same single scrypt, dummy salt
    assert len(derived) == 2


def test_revocation_applies_on_next_request_even_when_cached(tmp_path):
    server = KeyStore(tmp_path / "keys.json")
    admin_cli = KeyStore(tmp_path / "keys.json")  # another process, e.g. `medtune keys revoke`
    key, rec = admin_cli.create("alice", "clinician")
    other, _ = admin_cli.create("bob", "clinician")
    assert server.authenticate(key) is not None and server.authenticate(other) is not None
    admin_cli.revoke(rec.id)
    assert server.authenticate(key) is None
    assert server.authenticate(other) is not None


def test_revoke_by_name_needs_a_unique_active_name(store):
    store.create("alice", "clinician")
    store.create("alice", "clinician")
    with pytest.raises(SecurityError, match="revoke by id"):
        store.revoke("alice")
    with pytest.raises(SecurityError, match="no active key"):
        store.revoke("nobody")


def test_store_readable_by_others_or_malformed_is_refused(tmp_path):
    path = tmp_path / "keys.json"
    KeyStore(path).create("alice", "admin")
    os.chmod(path, 0o644)
    with pytest.raises(SecurityError, match="chmod 600"):
        KeyStore(path)
    os.chmod(path, 0o600)
    data = json.loads(path.read_text())
    data["keys"][0]["role"] = "root"
    path.write_text(json.dumps(data))
    with pytest.raises(SecurityError, match=r"keys\[0\]\.role"):
        KeyStore(path)


def test_roles_map_to_route_classes():
    clin, aud, adm = (Principal("0" * 12, "x", r) for r in (Role.CLINICIAN, Role.AUDITOR, Role.ADMIN))
    assert clin.may(RouteClass.INFERENCE) and not clin.may(RouteClass.AUDIT) and not clin.may(RouteClass.KEYS)
    assert aud.may(RouteClass.AUDIT) and not aud.may(RouteClass.INFERENCE)
    assert adm.may(RouteClass.KEYS) and not adm.may(RouteClass.INFERENCE) and not adm.may(RouteClass.AUDIT)


def test_cli_create_list_revoke(tmp_path):
    runner = CliRunner()
    path = str(tmp_path / "k.json")
    r = runner.invoke(app, ["keys", "create", "--name", "dr-a", "--role", "auditor", "--store", path])
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[-1]
    assert KeyStore(path).authenticate(key).role is Role.AUDITOR
    listed = runner.invoke(app, ["keys", "list", "--json", "--store", path])
    row = json.loads(listed.stdout.strip())
    assert row["name"] == "dr-a" and row["revoked"] is None and key not in listed.stdout and "hash" not in row
    assert runner.invoke(app, ["keys", "revoke", "dr-a", "--store", path]).exit_code == 0
    assert KeyStore(path).authenticate(key) is None
    bad = runner.invoke(app, ["keys", "create", "--name", "x", "--role", "nurse", "--store", path])
    assert bad.exit_code == 2 and "nurse" in bad.output
