"""db.connect's TLS context: pymysql's own settings, made once a process in its default mode."""

from __future__ import annotations

import ssl

import pymysql
from sluice import db


def test_connections_in_the_default_mode_share_one_context_with_pymysqls_settings(mysql_info):
    made = pymysql.connections.Connection._create_ssl_ctx(object(), {})
    first, second = db.connect(mysql_info), db.connect(mysql_info)
    try:
        assert first.ctx is second.ctx
        # Encrypt when the server offers TLS, verify nothing: as pymysql's own default.
        assert first.ssl and not first._ssl_required
        for attr in ("verify_mode", "check_hostname", "verify_flags", "options", "minimum_version"):
            assert getattr(first.ctx, attr) == getattr(made, attr), attr
        with first.cursor() as cur:  # the session works (this server offers no TLS)
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        first.close()
        second.close()


def test_tls_options_still_get_a_context_of_their_own():
    conn = db._Connection.__new__(db._Connection)
    shared = conn._create_ssl_ctx({})
    required = conn._create_ssl_ctx({"ca": None, "verify_mode": True, "check_hostname": False})
    assert shared is conn._create_ssl_ctx({}) and required is not shared
    assert (shared.verify_mode, required.verify_mode) == (ssl.CERT_NONE, ssl.CERT_REQUIRED)
