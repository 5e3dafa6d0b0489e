"""Transport and browser rules on the server: TLS really serves (a self-signed certificate made here, the openai
client verifying it), a non-loopback bind without TLS refuses to start, CORS is an allowlist and `*` with
credentials never loads, the security headers ride on every response, and the log carries no identifiers."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl

import httpx
import pytest
from serve_helpers import auth, live_server, make_app, security_section
from typer.testing import CliRunner

from medtune.config import ConfigError
from medtune.security.transport import TransportError
from medtune.serve.run import configure_logging, uvicorn_options
from medtune.serve.settings import ServeSettings, load_settings

openai = pytest.importorskip("openai")
MESSAGES = [{"role": "user", "content": "Chest pain?"}]


def self_signed(folder) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key (mode 0600), made with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "medtune test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return str(cert_path), str(key_path)


def test_tls_serves_the_api_to_a_client_that_trusts_the_certificate(tiny_model_dir, tmp_path):
    cert, key = self_signed(tmp_path)
    app = make_app(tiny_model_dir, folder=tmp_path / "srv", security={"tls_cert": cert, "tls_key": key})
    options = uvicorn_options(app.state.settings)  # what run_server hands uvicorn
    assert options["ssl_certfile"] == cert and options["ssl_keyfile"] == key
    tls_options = {k: options[k] for k in ("ssl_certfile", "ssl_keyfile")}
    with live_server(app, **tls_options) as (url, _):
        assert url.startswith("https://")
        trusted = httpx.Client(verify=ssl.create_default_context(cafile=cert), timeout=60)
        client = openai.OpenAI(base_url=url + "/v1", api_key=app.state.test_keys["clinician"], max_retries=0,
                               http_client=trusted)
        r = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=4, temperature=0)
        assert r.choices[0].message.content is not None
        health = trusted.get(url + "/health")
        assert health.status_code == 200 and health.headers["strict-transport-security"].startswith("max-age=")
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate is refused
            httpx.get(url + "/health")
        with pytest.raises(httpx.HTTPError):  # and nothing is served in plain text on that port
            httpx.get(url.replace("https://", "http://") + "/health")


def test_a_non_loopback_bind_without_tls_refuses_to_start(tiny_model_dir, tmp_path, caplog):
    with pytest.raises(TransportError, match="refusing to serve plain HTTP on 0.0.0.0"):
        make_app(tiny_model_dir, folder=tmp_path / "a", host="0.0.0.0")
    caplog.set_level(logging.WARNING, logger="medtune.security.transport")
    app = make_app(tiny_model_dir, folder=tmp_path / "b", host="0.0.0.0", security={"allow_plaintext": True})
    assert not app.state.gate.tls
    assert any("PLAINTEXT HTTP" in r.getMessage() for r in caplog.records)  # allowed, and said loudly


def test_the_cli_refuses_before_loading_the_model(tiny_model_dir, tmp_path, monkeypatch):
    from medtune.cli.main import app as cli

    for name in ("audit_hmac_key", "audit_signing_key", "keys_file"):
        monkeypatch.setenv(f"MEDTUNE_SECURITY__{name.upper()}", str(tmp_path / "secrets" / name))
    monkeypatch.setenv("MEDTUNE_SECURITY__AUDIT_DIR", str(tmp_path / "audit"))
    res = CliRunner().invoke(cli, ["serve", str(tiny_model_dir), "--host", "0.0.0.0"])
    assert res.exit_code == 2 and "refusing to serve plain HTTP" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["serve", str(tiny_model_dir), "--tls-cert", str(tmp_path / "none.pem")])
    assert res.exit_code == 2 and "tls_cert and tls_key" in res.output


def test_cors_is_an_allowlist_and_star_with_credentials_never_loads(tiny_model_dir, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="cors_origins `\\*` with cors_allow_credentials"):
        load_settings(None, {"security": {"cors_origins": ["*"], "cors_allow_credentials": True}})
    monkeypatch.setenv("MEDTUNE_SECURITY__CORS_ORIGINS", '["*"]')
    monkeypatch.setenv("MEDTUNE_SECURITY__CORS_ALLOW_CREDENTIALS", "true")
    with pytest.raises(ConfigError, match="serve.security"):
        load_settings()
    monkeypatch.delenv("MEDTUNE_SECURITY__CORS_ORIGINS")
    monkeypatch.delenv("MEDTUNE_SECURITY__CORS_ALLOW_CREDENTIALS")
    ehr = "https://ehr.hospital.example"
    app = make_app(tiny_model_dir, folder=tmp_path, security={"cors_origins": [ehr]})
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    with live_server(app) as (url, _):
        ok = httpx.options(url + "/v1/chat/completions", headers={"Origin": ehr, **preflight})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ehr
        assert "access-control-allow-credentials" not in ok.headers
        other = httpx.options(url + "/v1/chat/completions", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in other.headers
        r = httpx.get(url + "/v1/models", headers={"Origin": ehr, **auth(app)})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ehr
        r = httpx.get(url + "/v1/models", headers={"Origin": "https://evil.example", **auth(app)})
        assert "access-control-allow-origin" not in r.headers


def test_security_headers_on_every_response(tiny_model_dir, tmp_path):
    app = make_app(tiny_model_dir, folder=tmp_path)
    with live_server(app) as (url, _):
        responses = [httpx.get(url + "/"), httpx.get(url + "/static/app.js"), httpx.get(url + "/v1/models"),
                     httpx.get(url + "/nope", headers=auth(app)), httpx.get(url + "/v1/models", headers=auth(app)),
                     httpx.post(url + "/v1/chat/completions", json={}, headers=auth(app))]
    for r in responses:
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer" and "strict-transport-security" not in r.headers


def test_the_log_file_carries_no_identifiers(tmp_path):
    settings = ServeSettings(model="x", log_file=str(tmp_path / "logs" / "server.log"),
                             security=security_section(tmp_path))
    added = configure_logging(settings)
    try:
        log = logging.getLogger("medtune.serve.test")
        log.warning("note for Patient: Maria Gonzalez, MRN 00482913, phone (617) 555-0134")
        try:
            raise ValueError("bad note: Seen by Dr. Ana Reyes on 03/14/2021")
        except ValueError:
            log.exception("failed")
    finally:
        for handler in added:
            logging.getLogger().removeHandler(handler)
            handler.close()
    text = (tmp_path / "logs" / "server.log").read_text()
    assert "MRN" in text and "Traceback" in text and "ValueError" in text
    for secret in ("Gonzalez", "00482913", "555-0134", "Reyes", "03/14/2021"):
        assert secret not in text
    assert oct((tmp_path / "logs" / "server.log").stat().st_mode & 0o777) == "0o600"


def test_websocket_upgrades_are_refused(tiny_model_dir, tmp_path):
    """No route speaks WebSocket; an upgrade never switches protocols, with or without a key check."""
    import base64
    import os
    import socket

    app = make_app(tiny_model_dir, folder=tmp_path)
    with live_server(app) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        key = base64.b64encode(os.urandom(16)).decode()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall((f"GET /v1/models HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
            answer = sock.recv(4096).decode("latin-1")
    # 403 where uvicorn has a WebSocket library (the handshake is refused), 401 where it has none (plain HTTP)
    assert answer.split("\r\n")[0] in ("HTTP/1.1 403 Forbidden", "HTTP/1.1 401 Unauthorized"), answer[:200]
