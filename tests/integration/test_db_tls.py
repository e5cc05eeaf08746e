"""TLS to the databases: each mode against a server that speaks TLS (started here) and one that
does not (the shared test server), and a whole local run whose account the server lets in over
TLS only."""

from __future__ import annotations

import dataclasses
import io
import json

import boto3
import pymysql
import pytest
from sluice import db, retry
from sluice.demo_data import create_demo_database
from sluice.local.run import run_local

from . import tls_server
from .bulk_helpers import ensure_spark

pytestmark = pytest.mark.skipif(bool(tls_server.missing()), reason=str(tls_server.missing()))


@pytest.fixture(scope="module")
def tls():
    server, proc, where = tls_server.start()
    yield server
    tls_server.stop(proc, where)


def _info(server, **tls) -> db.ConnInfo:
    return db.ConnInfo(host=server.host, port=server.port, user="root", password="", **tls)


def _cipher(conn) -> str:
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        return cur.fetchone()[1]


def _session_cipher(info: db.ConnInfo) -> str:
    conn = db.connect(info)
    try:
        return _cipher(conn)
    finally:
        conn.close()


def test_verify_identity_with_the_servers_ca_connects_encrypted(tls, monkeypatch):
    # A CA bundle alone verifies the server's identity: the strictest mode.
    monkeypatch.setenv("SLUICE_SOURCE_URL", f"mysql://root@localhost:{tls.port}")
    monkeypatch.setenv("SLUICE_SOURCE_SSL_CA", str(tls.ca))
    info = db.resolve("source")
    assert (info.ssl_mode, info.ssl_ca) == ("verify-identity", str(tls.ca))
    assert _session_cipher(info)


def test_a_ca_that_did_not_sign_the_servers_certificate_is_refused_and_not_retried(tls):
    info = _info(tls, ssl_mode="verify-ca", ssl_ca=str(tls.other_ca))
    with pytest.raises(db.ConnectError) as caught:
        db.connect(info)
    message = str(caught.value)
    assert f"127.0.0.1:{tls.port}" in message and "TLS verify-ca" in message
    assert str(tls.other_ca) in message and "CERTIFICATE_VERIFY_FAILED" in message
    # A certificate that fails now fails on every attempt: the page fails at once.
    assert not retry.is_transient(caught.value)


def test_verify_identity_refuses_a_name_the_certificate_does_not_hold(tls):
    # The certificate names localhost only. Reached by its address, the same server passes
    # verify-ca (a certificate the CA signed) and fails verify-identity (not its name).
    assert _session_cipher(_info(tls, ssl_mode="verify-ca", ssl_ca=str(tls.ca)))
    with pytest.raises(db.ConnectError, match="TLS verify-identity.*mismatch") as caught:
        db.connect(_info(tls, ssl_mode="verify-identity", ssl_ca=str(tls.ca)))
    assert not retry.is_transient(caught.value)


def test_the_ca_bundle_may_be_given_as_pem_text_in_the_secret(tls, monkeypatch):
    from moto import mock_aws

    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="sluice/source",
            SecretString=json.dumps(
                {
                    "host": "localhost",
                    "port": tls.port,
                    "username": "root",
                    "password": "",
                    "ssl_mode": "VERIFY_IDENTITY",  # as MySQL's clients spell it
                    "ssl_ca": tls.ca.read_text(),
                }
            ),
        )["ARN"]
        monkeypatch.setenv("SLUICE_SOURCE_SECRET_ARN", arn)
        info = db.resolve("source")
    assert info.ssl_mode == "verify-identity" and info.ssl_ca.startswith("-----BEGIN")
    assert "given as PEM text" in info.described()
    assert _session_cipher(info)


@pytest.fixture
def server_without_tls(mysql_info) -> db.ConnInfo:
    """The shared test server, which offers no TLS on Debian's MariaDB 10.11 (MySQL 8 and
    MariaDB 11.4 on do: the tests that need a server without it are skipped there)."""
    conn = db.connect(mysql_info)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@have_ssl")
            offered = cur.fetchone()[0] == "YES"
    finally:
        conn.close()
    if offered:
        pytest.skip("the shared test server offers TLS")
    return mysql_info


def test_required_refuses_a_server_without_tls(server_without_tls):
    info = dataclasses.replace(server_without_tls, ssl_mode="required")
    with pytest.raises(db.ConnectError, match=r"TLS required\): SSL is required"):
        db.connect(info)


def test_preferred_encrypts_when_offered_and_disabled_does_not(tls):
    assert _session_cipher(_info(tls)) != ""  # preferred, the default
    assert _session_cipher(_info(tls, ssl_mode="required")) != ""
    assert _session_cipher(_info(tls, ssl_mode="disabled")) == ""


def test_preferred_connects_in_the_clear_to_a_server_without_tls(server_without_tls):
    assert _session_cipher(server_without_tls) == ""


@pytest.mark.parametrize("path", ["lambda", "bulk"])
def test_a_local_run_reads_and_writes_over_verified_tls_only(tls, monkeypatch, tmp_path, path):
    if path == "bulk":
        ensure_spark()
    shop, copy, user = f"shop_{path}", f"copy_{path}", f"sluice_{path}"
    admin = pymysql.connect(host=tls.host, port=tls.port, user="root", autocommit=True)
    try:
        with admin.cursor() as cur:
            for sql in (
                f"CREATE DATABASE {shop}",
                f"CREATE DATABASE {copy}",
                # The server lets this account in over TLS only: every connection of the run
                # (plan, extract, load, verify; on the bulk path the JDBC read and the Spark
                # tasks too) must have been encrypted for it to succeed.
                f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw' REQUIRE SSL",
                f"GRANT ALL ON {shop}.* TO '{user}'@'%'",
                f"GRANT ALL ON {copy}.* TO '{user}'@'%'",
            ):
                cur.execute(sql)
        create_demo_database(admin, shop, scale=0.01)
        with admin.cursor() as cur:
            cur.execute(f"CREATE TABLE {copy}.users LIKE {shop}.users")
            cur.execute(f"CREATE TABLE {copy}.orders LIKE {shop}.orders")
        url = f"mysql://{user}:pw@localhost:{tls.port}"
        for role in ("SOURCE", "TARGET"):
            monkeypatch.setenv(f"SLUICE_{role}_URL", url)
            monkeypatch.setenv(f"SLUICE_{role}_SSL_MODE", "verify-identity")
            monkeypatch.setenv(f"SLUICE_{role}_SSL_CA", str(tls.ca))
        contract = {
            "version": 1,
            "source": {"database": shop},
            "target": {"kind": "mysql", "database": copy},
            "defaults": {"page_size": 50},
            "tables": [
                {"source": t, "key": ["id"], "target": {"table": t}, "path": path}
                for t in ("users", "orders")
            ],
        }
        doc = tmp_path / "contract.json"
        doc.write_text(json.dumps(contract))
        modes = []  # each connection's TLS mode, as connect() set it up
        tls_options = db._tls_options
        monkeypatch.setattr(
            db, "_tls_options", lambda i: modes.append(i.ssl_mode) or tls_options(i)
        )

        summary = run_local(
            doc, as_json=True, out=io.StringIO(), state_dir=tmp_path / "state", timeout=120
        )

        assert summary["status"] == "SUCCEEDED" and summary["ok"], summary["verdict"]
        assert {t["path"] for t in summary["tables"].values()} == {path}
        # (The bulk path's Spark tasks connect in processes of their own, not counted here.)
        assert len(modes) >= 4 and set(modes) == {"verify-identity"}, modes
        with admin.cursor() as cur:
            for t in ("users", "orders"):
                cur.execute(f"SELECT * FROM {shop}.{t} ORDER BY id")  # noqa: S608
                source = cur.fetchall()
                cur.execute(f"SELECT * FROM {copy}.{t} ORDER BY id")  # noqa: S608
                assert cur.fetchall() == source and len(source) > 50, t
    finally:
        admin.close()
