"""The audit log and the PHI policy on the live server: one event per request (refused ones too) that
`medtune audit verify` accepts, no text in it, a write failure fails the request with 503; the model sees
redacted input (or the request is refused under `block`); auditors read events and admins manage keys
over HTTP; a model file that differs from its export manifest is never loaded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from serve_helpers import auth, live_server, make_app
from typer.testing import CliRunner

from medtune.security.audit_verify import read_events
from medtune.security.integrity import ModelIntegrityError

CHAT = "/v1/chat/completions"
NOTE = "Maria Gonzalez (MRN 00482913) has Graves disease; call (617) 555-0134."
SECRETS = ("Gonzalez", "00482913", "555-0134")


def capture_prompts(app) -> list:
    """Wrap the backend's prepare: the prompts the model is actually given."""
    backend = app.state.gateway.backend
    seen, original = [], backend.prepare
    backend.prepare = lambda prompt: (seen.append(prompt), original(prompt))[1]
    return seen


def verify_cli(section) -> tuple[int, str]:
    from medtune.cli.main import app as cli
    from medtune.security.audit import head_path_for
    from medtune.security.keyfiles import public_key_path

    res = CliRunner().invoke(cli, ["audit", "verify", section.audit_dir, "--public-key",
                                   str(public_key_path(section.audit_signing_key)), "--head",
                                   str(head_path_for(section.audit_signing_key))])
    return res.exit_code, " ".join(res.output.split())  # (rich wraps long lines)


def test_one_verified_event_per_request_with_no_text(tiny_model_dir, tmp_path):
    app = make_app(tiny_model_dir, folder=tmp_path, security={"max_body_bytes": 2048}, analyze_max_tokens=16)
    sec = app.state.settings.security
    body = {"model": "tiny", "messages": [{"role": "user", "content": NOTE}], "max_tokens": 4, "temperature": 0}
    sent = []
    with live_server(app) as (url, _):
        prompts = capture_prompts(app)
        calls = [("POST", CHAT, body, "clinician"), ("POST", CHAT, body, None), ("GET", "/metrics", None, "clinician"),
                 ("POST", CHAT, {**body, "n": 50}, "clinician"), ("GET", "/nowhere", None, "admin"),
                 ("POST", CHAT, {**body, "messages": [{"role": "user", "content": "x" * 3000}]}, "clinician"),
                 ("POST", CHAT, {**body, "stream": True}, "clinician"), ("GET", "/health", None, None),
                 ("POST", "/v1/analyze_case", {"case": NOTE, "options": {"A": "Graves disease", "B": "Gout"}}, "clinician")]
        for method, path, payload, role in calls:
            r = httpx.request(method, url + path, json=payload, headers=auth(app, role) if role else {}, timeout=60)
            sent.append((r.headers["x-request-id"], r.status_code))
    events = read_events(os.path.join(sec.audit_dir, "audit.jsonl"))
    assert [(e["request_id"], e["status"]) for e in events] == sent
    assert [s for _, s in sent] == [200, 401, 403, 422, 404, 413, 200, 200, 200]
    ok, keyless, forbidden = events[0], events[1], events[2]
    assert ok["key_id"] == app.state.test_keys["clinician"].split("_")[1] and ok["role"] == "clinician"
    assert ok["route"] == CHAT and ok["phi"] == {"NAME": 1, "MRN": 1, "PHONE": 1}
    assert ok["input_hmac"] and ok["output_hmac"] and ok["model_sha256"] == "ab" * 32 and ok["completion_tokens"] > 0
    assert keyless["key_id"] is None and keyless["route"] == CHAT and keyless["input_hmac"] is None
    assert forbidden["role"] == "clinician" and forbidden["route"] == "/metrics"
    assert events[4]["route"] == "/{unmatched}" and events[8]["phi"]["NAME"] == 1
    # the model saw placeholders, never the identifiers (chat and the case endpoint alike)
    assert prompts and all(s not in json.dumps(p.messages) for p in prompts for s in SECRETS)
    assert all("[NAME]" in json.dumps(p.messages) and "Graves disease" in json.dumps(p.messages) for p in prompts)
    log_text = open(os.path.join(sec.audit_dir, "audit.jsonl")).read()
    assert not [s for s in (*SECRETS, "Maria", *app.state.test_keys.values()) if s in log_text]
    code, output = verify_cli(sec)  # the server closed the log with a signed checkpoint
    assert code == 0, output
    assert f"{len(sent)} events" in output and "0 events after the last one" in output


def test_block_policy_refuses_with_the_types_and_records_them(tiny_model_dir, tmp_path):
    app = make_app(tiny_model_dir, folder=tmp_path, security={"phi_policy": "block"})
    with live_server(app) as (url, _):
        prompts = capture_prompts(app)
        r = httpx.post(url + CHAT, json={"model": "tiny", "messages": [{"role": "user", "content": NOTE}]}, headers=auth(app))
        assert r.status_code == 422 and r.json()["error"]["code"] == "phi_blocked"
        assert all(t in r.json()["error"]["message"] for t in ("MRN", "NAME", "PHONE"))
        assert not any(s in r.text for s in SECRETS)
        clean = httpx.post(url + CHAT, json={"model": "tiny", "messages": [{"role": "user", "content": "Fever, cough."}],
                                             "max_tokens": 2}, headers=auth(app))
        assert clean.status_code == 200
    assert len(prompts) == 1  # the refused note never reached the model
    events = read_events(os.path.join(app.state.settings.security.audit_dir, "audit.jsonl"))
    assert events[0]["status"] == 422 and events[0]["phi"] == {"NAME": 1, "MRN": 1, "PHONE": 1}


def test_an_audit_write_failure_fails_the_request_with_503(tiny_model_dir, tmp_path):
    app = make_app(tiny_model_dir, folder=tmp_path)
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Fever?"}], "max_tokens": 2}
    with live_server(app) as (url, _):
        assert httpx.post(url + CHAT, json=body, headers=auth(app)).status_code == 200
        readonly = os.open(os.devnull, os.O_RDONLY)  # the log's file can no longer be written (a failing disk)
        os.dup2(readonly, app.state.gate.audit._fd)
        os.close(readonly)
        for _ in range(2):
            r = httpx.post(url + CHAT, json=body, headers=auth(app))
            assert r.status_code == 503 and r.json()["error"]["code"] == "record_failed"
            assert "choices" not in r.text  # the answer is withheld


def test_auditors_read_events_over_http(tiny_model_dir, tmp_path):
    app = make_app(tiny_model_dir, folder=tmp_path)
    clinician_id = app.state.test_keys["clinician"].split("_")[1]
    with live_server(app) as (url, _):
        httpx.get(url + "/v1/models", headers=auth(app))
        httpx.get(url + "/metrics", headers=auth(app, "admin"))
        r = httpx.get(url + "/v1/audit/events", params={"key": clinician_id}, headers=auth(app, "auditor"))
        assert r.status_code == 200 and r.json()["total"] == 1
        assert r.json()["data"][0]["route"] == "/v1/models" and r.json()["data"][0]["key_id"] == clinician_id
        everything = httpx.get(url + "/v1/audit/events", params={"since": "2000-01-01", "limit": 2},
                               headers=auth(app, "auditor")).json()
        assert everything["total"] >= 3 and len(everything["data"]) == 2
        assert httpx.get(url + "/v1/audit/events", params={"since": "2099-01-01"}, headers=auth(app, "auditor")).json()["total"] == 0
        bad = httpx.get(url + "/v1/audit/events", params={"since": "last tuesday"}, headers=auth(app, "auditor"))
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "since"
        assert httpx.get(url + "/v1/audit/events", headers=auth(app, "admin")).status_code == 403


def test_a_damaged_audit_line_is_skipped_over_http_never_a_500(tiny_model_dir, tmp_path):
    app = make_app(tiny_model_dir, folder=tmp_path)
    with live_server(app) as (url, _):
        assert httpx.get(url + "/v1/models", headers=auth(app)).status_code == 200
        with open(app.state.gate.audit.path, "a") as f:  # an event line with no time (damaged or tampered)
            f.write(json.dumps({"type": "event", "route": "/v1/models", "status": 200}) + "\n")
        for params in ({"since": "2000-01-01"}, {}):
            r = httpx.get(url + "/v1/audit/events", params=params, headers=auth(app, "auditor"))
            assert r.status_code == 200, r.text
            assert r.json()["total"] >= 1 and all(e["time"] and e["request_id"] for e in r.json()["data"])


def test_admins_create_list_and_revoke_keys_over_http(tiny_model_dir, tmp_path):
    app = make_app(tiny_model_dir, folder=tmp_path)
    with live_server(app) as (url, _):
        made = httpx.post(url + "/v1/keys", json={"name": "dr-lee", "role": "clinician"}, headers=auth(app, "admin"))
        assert made.status_code == 201 and made.json()["key"].startswith("mt_" + made.json()["id"])
        new = {"Authorization": "Bearer " + made.json()["key"]}
        assert httpx.get(url + "/v1/models", headers=new).status_code == 200
        listed = httpx.get(url + "/v1/keys", headers=auth(app, "admin")).json()["data"]
        assert {k["name"] for k in listed} >= {"dr-lee", "test-admin"} and all(set(k) == {"id", "name", "role", "created", "revoked"} for k in listed)
        assert httpx.post(url + "/v1/keys", json={"name": "x y", "role": "clinician"}, headers=auth(app, "admin")).status_code == 400
        assert httpx.post(url + "/v1/keys", json={"name": "eve", "role": "root"}, headers=auth(app, "admin")).status_code == 400
        assert httpx.post(url + "/v1/keys", json={"name": "eve", "role": "admin"}, headers=auth(app)).status_code == 403
        gone = httpx.delete(url + f"/v1/keys/{made.json()['id']}", headers=auth(app, "admin"))
        assert gone.status_code == 200 and gone.json()["revoked"]
        assert httpx.get(url + "/v1/models", headers=new).status_code == 401
        assert httpx.delete(url + f"/v1/keys/{made.json()['id']}", headers=auth(app, "admin")).status_code == 404
    log_text = open(os.path.join(app.state.settings.security.audit_dir, "audit.jsonl")).read()
    assert made.json()["key"] not in log_text and made.json()["key"].split("_", 2)[2] not in log_text


def test_a_model_file_that_differs_from_its_export_manifest_is_not_loaded(tmp_path):
    from medtune.serve.backends import build_backend
    from medtune.serve.settings import ServeSettings
    from medtune.utils.io import sha256_file

    gguf = tmp_path / "medtune-x-q4_k_m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 64)
    summary = {"files": {"q4_k_m": {"path": str(gguf), "bytes": gguf.stat().st_size, "sha256": sha256_file(gguf)}}}
    (tmp_path / "export_summary.json").write_text(json.dumps(summary))
    gguf.write_bytes(b"GGUF" + b"\1" * 64)  # same size, other bytes
    with pytest.raises(ModelIntegrityError, match="differs from"):
        build_backend(ServeSettings(model=str(gguf)))  # refused before llama.cpp ever opens the file


def test_an_exported_gguf_is_checked_by_its_sha256_before_serving(tiny_model_dir, tmp_path):
    """`medtune export` records each file's sha256; serving the file checks it; one changed byte refuses."""
    from medtune.export.pipeline import export_run
    from medtune.security.integrity import verify_model_file
    from medtune.serve.backends import build_backend
    from medtune.serve.settings import ServeSettings
    from medtune.utils.io import sha256_file

    summary = export_run(tiny_model_dir, tmp_path / "export", quants=["q8_0"], verify=False, modelfile=False,
                         model_card=False)
    gguf = Path(summary["files"]["q8_0"]["path"])
    assert summary["files"]["q8_0"]["sha256"] == sha256_file(gguf)
    assert json.loads((tmp_path / "export" / "export_summary.json").read_text())["files"]["q8_0"]["sha256"] == sha256_file(gguf)
    assert verify_model_file(gguf).checked == "sha256"
    data = bytearray(gguf.read_bytes())
    data[len(data) // 2] ^= 0x01
    gguf.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="changed after export"):
        build_backend(ServeSettings(model=str(gguf)))
