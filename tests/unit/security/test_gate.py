import asyncio
import json
import time

import pytest

from medtune.config.sections.security import SecuritySection
from medtune.security.audit import AuditError, head_path_for
from medtune.security.audit_verify import read_events, verify_log
from medtune.security.gate import AuthError, SecurityGate
from medtune.security.keyfiles import load_public_key, public_key_path
from medtune.security.keys import KeyStore, RouteClass
from medtune.security.limits import LimitError
from medtune.security.phi.policy import PhiBlocked
from medtune.security.transport import TransportError

NOTE = "Maria Gonzalez (MRN 00482913) has Graves disease."


@pytest.fixture()
def section(tmp_path):
    return SecuritySection(keys_file=str(tmp_path / "k" / "keys.json"), audit_dir=str(tmp_path / "audit"),
                           audit_hmac_key=str(tmp_path / "k" / "hmac.key"), audit_signing_key=str(tmp_path / "k" / "s.pem"),
                           requests_per_minute=3, auth_failures_per_minute=2, phi_presidio=False)


@pytest.fixture()
def gate(section):
    g = SecurityGate.from_settings(section, host="127.0.0.1", model_sha256="d" * 64)
    yield g
    g.close()


def _one_request(gate, authorization, route_class, body, client="10.0.0.1"):
    """What the app does per request, with its error mapping."""
    started, principal, status, screened = time.monotonic(), None, 200, None
    try:
        gate.check_body_size(len(json.dumps(body)))
        principal = gate.authenticate(authorization, client)
        gate.authorize(principal, route_class)
        gate.admit(principal)  # before the body is read: every request the role may make counts
        gate.check_caps(body)
        screened = gate.screen(body["messages"])
    except (AuthError, LimitError, PhiBlocked) as e:
        status = e.status
    output = "An answer." if status == 200 else None
    gate.record(principal=principal, method="POST", route="/v1/chat/completions", request_id=f"r{time.monotonic_ns()}",
                status=status, latency_s=time.monotonic() - started, input_text=json.dumps(body["messages"]), output_text=output,
                phi=screened.phi if screened else None, prompt_tokens=12, completion_tokens=5 if output else 0)
    return status, screened


def test_the_request_path_end_to_end(gate, section):
    store = KeyStore(section.keys_file)
    clin, _ = store.create("dr-a", "clinician")
    aud, _ = store.create("aud", "auditor")
    body = {"messages": [{"role": "user", "content": NOTE}], "max_tokens": 10**6}
    status, screened = _one_request(gate, f"Bearer {clin}", RouteClass.INFERENCE, body)
    assert status == 200 and "Gonzalez" not in json.dumps(screened.content) and "Graves disease" in json.dumps(screened.content)
    assert screened.phi == {"NAME": 1, "MRN": 1}
    assert _one_request(gate, None, RouteClass.INFERENCE, body)[0] == 401
    assert _one_request(gate, f"Bearer {aud}", RouteClass.INFERENCE, body)[0] == 403
    assert _one_request(gate, f"Bearer {clin}", RouteClass.INFERENCE, {**body, "n": 99})[0] == 422
    assert _one_request(gate, f"Bearer {clin}", RouteClass.INFERENCE, body)[0] == 200
    assert _one_request(gate, f"Bearer {clin}", RouteClass.INFERENCE, body)[0] == 429  # 3 a minute, the 422 among them
    gate.close()
    events = read_events(gate.audit.path)
    assert [e["status"] for e in events] == [200, 401, 403, 422, 200, 429]
    assert events[0]["phi"] == {"MRN": 1, "NAME": 1} and events[0]["model_sha256"] == "d" * 64
    assert events[1]["key_id"] is None and events[2]["role"] == "auditor"
    text = gate.audit.path.read_text()
    assert "Gonzalez" not in text and "00482913" not in text and clin not in text
    rep = verify_log(gate.audit.path, load_public_key(public_key_path(section.audit_signing_key)),
                     head_path_for(section.audit_signing_key))
    assert rep.ok and rep.events == 6


def test_repeated_failed_keys_are_throttled_per_address(gate):
    body = {"messages": []}
    for _ in range(2):
        with pytest.raises(AuthError):
            gate.authenticate("Bearer mt_000000000000_" + "A" * 43, "10.9.9.9")
    with pytest.raises(LimitError) as info:
        gate.authenticate("Bearer anything", "10.9.9.9")
    assert info.value.status == 429 and info.value.retry_after >= 1
    assert _one_request(gate, None, RouteClass.INFERENCE, body, client="10.9.9.10")[0] == 401


def test_a_missing_key_is_401_but_not_a_failed_guess(gate):
    for _ in range(5):  # a client that sends no key is not guessing: it is never throttled for it
        with pytest.raises(AuthError) as info:
            gate.authenticate(None, "10.7.7.7")
        assert info.value.status == 401 and info.value.headers()["WWW-Authenticate"].startswith("Bearer")
    gate.authenticate("Bearer " + KeyStore(gate.keys.path).create("dr-b", "clinician")[0], "10.7.7.7")


def test_block_policy_and_async_record(section):
    gate = SecurityGate.from_settings(section.model_copy(update={"phi_policy": "block"}), host="::1")
    with pytest.raises(PhiBlocked) as info:
        gate.screen([{"role": "user", "content": NOTE}])
    assert info.value.types == ["MRN", "NAME"]
    entry = asyncio.run(gate.arecord(principal=None, method="GET", route="/health", request_id="h1", status=200,
                                     latency_s=0.01))
    assert entry["type"] == "event"
    gate.close()


def test_startup_refusals(section, tmp_path):
    with pytest.raises(TransportError):
        SecurityGate.from_settings(section, host="0.0.0.0")
    g = SecurityGate.from_settings(section, host="127.0.0.1")
    with pytest.raises(AuditError, match="another process"):
        SecurityGate.from_settings(section, host="127.0.0.1")
    g.close()
