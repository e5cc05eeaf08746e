"""The TLS settings of a database connection: where they come from and what is refused."""

from __future__ import annotations

import os

import pytest
from sluice import db
from sluice.errors import SluiceError

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"


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


def test_each_mode_gives_pymysql_the_checks_it_names(tmp_path):
    import ssl

    assert db._tls_options(db.ConnInfo("h", 1, "u", "p")) == {}  # pymysql's preferred
    assert db._tls_options(db.ConnInfo("h", 1, "u", "p", ssl_mode="disabled")) == {
        "ssl_disabled": True
    }
    required = db._tls_options(db.ConnInfo("h", 1, "u", "p", ssl_mode="required"))["ssl"]
    assert (required.verify_mode, required.check_hostname) == (ssl.CERT_NONE, False)
    checks = {}
    for mode in db.VERIFYING:  # the system's trust store: no bundle given
        ctx = db._tls_options(db.ConnInfo("h", 1, "u", "p", ssl_mode=mode))["ssl"]
        checks[mode] = (ctx.verify_mode, ctx.check_hostname)
        assert not ctx.verify_flags & ssl.VERIFY_X509_STRICT  # as pymysql's own contexts
    assert checks == {
        "verify-ca": (ssl.CERT_REQUIRED, False),
        "verify-identity": (ssl.CERT_REQUIRED, True),
    }
    # One context a process for each mode and bundle.
    assert db._tls_context("verify-ca", None) is db._tls_context("verify-ca", None)


def test_a_refused_certificate_is_not_transient_while_a_refused_connection_is():
    import ssl

    import pymysql

    def connect_error(cause: BaseException) -> db.ConnectError:
        # As pymysql raises it: "cannot connect" (2003) while handling the socket's error.
        try:
            try:
                raise cause
            except OSError as exc:
                raise pymysql.err.OperationalError(2003, f"Can't connect ({exc})") from None
        except pymysql.err.OperationalError as driver:
            error = db.ConnectError(f"cannot connect: {driver.args[-1]}")
            error.__cause__ = driver
            driver.__context__ = cause
            return error

    from sluice import retry

    refused = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED]")
    assert not retry.is_transient(connect_error(refused))
    assert retry.is_transient(connect_error(ConnectionRefusedError(111, "refused")))


def test_settings_of_the_wrong_type_or_shape_are_refused_by_name(tmp_path):
    names = ("the secret's ssl_mode", "the secret's ssl_ca")
    info = db.ConnInfo("h", 1, "u", "p")
    with pytest.raises(SluiceError, match="the secret's ssl_mode is bool: give it as a string"):
        db.with_tls(info, True, None, names)
    with pytest.raises(SluiceError, match="does not start with -----BEGIN CERTIFICATE-----"):
        db.with_tls(info, "verify-ca", "-----BEGIN PRIVATE KEY-----\nx", names)
    # Text is trimmed (Connector/J wants the certificate's first line first); a path is made
    # absolute (Spark's workers resolve it from elsewhere).
    assert db.with_tls(info, None, "\n" + PEM, names).ssl_ca == PEM.strip()
    (tmp_path / "ca.pem").write_text(PEM)
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert db.with_tls(info, None, "ca.pem", names).ssl_ca == str(tmp_path / "ca.pem")
    finally:
        os.chdir(here)
