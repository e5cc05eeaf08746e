"""The TLS settings of a database connection: where they come from and what is refused."""

from __future__ import annotations

import pytest
from sluice import db
from sluice.errors import SluiceError

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def source(monkeypatch):
    monkeypatch.setenv("SLUICE_SOURCE_URL", "mysql://u:p@db.example:3306")
    for name in ("SLUICE_SOURCE_SECRET_ARN", "SLUICE_SOURCE_SSL_MODE", "SLUICE_SOURCE_SSL_CA"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_settings_the_mode_is_pymysqls_preferred(source):
    info = db.resolve("source")
    assert (info.ssl_mode, info.ssl_ca) == ("preferred", None)
    assert info.described() == "mysql://u@db.example:3306/"


@pytest.mark.parametrize(
    ("given", "mode"),
    [
        ("VERIFY_IDENTITY", "verify-identity"),
        (" verify-ca ", "verify-ca"),
        ("Required", "required"),
    ],
)
def test_modes_are_read_as_mysqls_clients_spell_them(source, given, mode):
    source.setenv("SLUICE_SOURCE_SSL_MODE", given)
    assert db.resolve("source").ssl_mode == mode


def test_a_ca_bundle_alone_verifies_the_servers_identity(source, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text(PEM)
    source.setenv("SLUICE_SOURCE_SSL_CA", str(ca))
    info = db.resolve("source")
    assert (info.ssl_mode, info.ssl_ca) == ("verify-identity", str(ca))
    assert info.described() == f"mysql://u@db.example:3306/ (TLS verify-identity, CA {ca})"


def test_an_unknown_mode_is_refused_naming_the_variable(source):
    source.setenv("SLUICE_SOURCE_SSL_MODE", "verify-full")
    with pytest.raises(SluiceError, match=r"SLUICE_SOURCE_SSL_MODE='verify-full': give one of"):
        db.resolve("source")


def test_a_ca_bundle_beside_a_mode_that_checks_nothing_is_refused(source):
    source.setenv("SLUICE_SOURCE_SSL_MODE", "required")
    source.setenv("SLUICE_SOURCE_SSL_CA", PEM)
    with pytest.raises(
        SluiceError, match="SLUICE_SOURCE_SSL_CA is set but SLUICE_SOURCE_SSL_MODE is required"
    ):
        db.resolve("source")


def test_a_ca_bundle_path_that_is_no_file_is_refused(source, tmp_path):
    source.setenv("SLUICE_SOURCE_SSL_CA", str(tmp_path / "missing.pem"))
    with pytest.raises(SluiceError, match=r"SLUICE_SOURCE_SSL_CA: no file at .*missing\.pem"):
        db.resolve("source")


def test_the_environment_overrides_the_secrets_settings(source):
    source.setenv("SLUICE_SOURCE_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:1:secret:s")
    secret = db.ConnInfo("h", 3306, "u", "p", ssl_mode="verify-ca", ssl_ca=PEM)
    source.setattr(db, "_secret", lambda arn: secret)

    def resolved(mode: str, ca: str) -> tuple:
        source.setenv("SLUICE_SOURCE_SSL_MODE", mode)
        source.setenv("SLUICE_SOURCE_SSL_CA", ca)
        info = db.resolve("source")
        return info.ssl_mode, info.ssl_ca

    other = PEM.replace("MIIB", "MIIC")
    assert resolved("", "") == ("verify-ca", PEM)  # the secret's own
    assert resolved("verify-identity", "") == ("verify-identity", PEM)  # keeps its CA bundle
    assert resolved("required", "") == ("required", None)  # checks nothing: no CA bundle
    assert resolved("", other) == ("verify-ca", other)  # keeps its verifying mode


def test_a_ca_bundle_that_is_not_pem_fails_with_its_name(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(db.ConnectError, match=f"the CA bundle {bad} cannot be read"):
        db._tls_context("verify-ca", str(bad))


def test_the_bulk_jobs_jdbc_read_gets_connector_js_settings_for_each_mode():
    from sluice.bulk_spark import jdbc_tls

    def props(mode, ca=None):
        return jdbc_tls(db.ConnInfo("h", 3306, "u", "p", ssl_mode=mode, ssl_ca=ca))

    assert props("disabled") == {"useSsl": "false"}
    assert props("preferred") == {}  # Connector/J 2.x has no such mode: in the clear
    assert props("required") == {"useSsl": "true", "trustServerCertificate": "true"}
    assert props("verify-ca", PEM) == {
        "useSsl": "true",
        "serverSslCert": PEM,
        "disableSslHostnameVerification": "true",
    }
    assert props("verify-identity") == {"useSsl": "true"}  # Java's trust store decides
