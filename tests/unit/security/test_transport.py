import logging
import os

import pytest
from pydantic import ValidationError

from medtune.config.sections.security import SecuritySection
from medtune.security.transport import TransportError, check_bind, cors_options, security_headers


def test_loopback_plaintext_is_fine_and_other_addresses_refuse_without_tls():
    assert check_bind("127.0.0.1", None, None, False) is False
    assert check_bind("::1", None, None, False) is False
    for host in ("0.0.0.0", "10.1.2.3", "::", "ehr-gw.example.org"):
        with pytest.raises(TransportError, match="tls_cert"):
            check_bind(host, None, None, False)


def test_allow_plaintext_is_logged_loudly(caplog):
    with caplog.at_level(logging.WARNING):
        assert check_bind("0.0.0.0", None, None, True) is False
    assert "PLAINTEXT" in caplog.text


def test_tls_files_must_exist_and_the_key_be_private(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    with pytest.raises(TransportError, match="does not exist"):
        check_bind("0.0.0.0", str(cert), str(key), False)
    cert.write_text("cert")
    key.write_text("key")
    os.chmod(key, 0o644)
    with pytest.raises(Exception, match="chmod 600"):
        check_bind("0.0.0.0", str(cert), str(key), False)
    os.chmod(key, 0o600)
    assert check_bind("0.0.0.0", str(cert), str(key), False) is True


def test_cors_star_with_credentials_is_rejected_at_settings_load():
    with pytest.raises(ValidationError, match="credentials"):
        SecuritySection(cors_origins=["*"], cors_allow_credentials=True)
    with pytest.raises(ValidationError, match="scheme://host"):
        SecuritySection(cors_origins=["ehr.example.org"])
    with pytest.raises(ValidationError, match="no path"):
        SecuritySection(cors_origins=["https://ehr.example.org/app"])
    ok = SecuritySection(cors_origins=["https://ehr.example.org"], cors_allow_credentials=True)
    opts = cors_options(ok.cors_origins, ok.cors_allow_credentials)
    assert opts["allow_origins"] == ["https://ehr.example.org"] and opts["allow_credentials"] is True
    assert cors_options([], False) is None
    with pytest.raises(TransportError):
        cors_options(["*"], True)


def test_settings_keep_secrets_out_of_the_log_folder_and_tls_paired(tmp_path):
    with pytest.raises(ValidationError, match="audit_hmac_key is inside audit_dir"):
        SecuritySection(audit_dir=str(tmp_path / "audit"), audit_hmac_key=str(tmp_path / "audit" / "k"))
    with pytest.raises(ValidationError, match="both tls_cert and tls_key"):
        SecuritySection(tls_cert="c.pem")


def test_security_headers():
    h = security_headers(tls=False)
    csp = h["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert h["X-Frame-Options"] == "DENY" and h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "no-referrer" and "Strict-Transport-Security" not in h
    assert "Strict-Transport-Security" in security_headers(tls=True)
