"""MySQL connections: where credentials come from, and the session every stage uses."""

from __future__ import annotations

import contextlib
import json
import os
import re
import ssl
import threading
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import ClassVar
from urllib.parse import unquote, urlsplit

import pymysql
import pymysql.converters
import pymysql.cursors

from .errors import SluiceError

# TLS modes, as MySQL's clients name them (--ssl-mode). "preferred" encrypts when the server
# offers TLS and checks no certificate; "required" insists on TLS, still unchecked; "verify-ca"
# also checks the server's certificate against the CA bundle (ssl_ca, else the system's); and
# "verify-identity" also checks that the certificate names the host connected to.
SSL_MODES = ("disabled", "preferred", "required", "verify-ca", "verify-identity")
VERIFYING = ("verify-ca", "verify-identity")


@dataclass(frozen=True, slots=True)
class ConnInfo:
    host: str
    port: int
    user: str
    password: str
    database: str | None = None
    ssl_mode: str = "preferred"
    ssl_ca: str | None = None  # a PEM CA bundle: a file's path, or the PEM text itself

    def redacted(self) -> str:
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database or ''}"

    def described(self) -> str:
        """redacted() and the TLS mode, when it is not the default."""
        if self.ssl_mode == "preferred":
            return self.redacted()
        ca = "" if self.ssl_mode not in VERIFYING else f", CA {_ca_named(self.ssl_ca)}"
        return f"{self.redacted()} (TLS {self.ssl_mode}{ca})"

    def with_database(self, database: str | None) -> ConnInfo:
        return replace(self, database=database)


def parse_url(url: str) -> ConnInfo:
    """Parse `mysql://user[:password]@host[:port][/database]`."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb"):
        raise SluiceError(f"not a mysql:// URL: {_redact(url)}")
    return ConnInfo(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=parts.path.lstrip("/") or None,
    )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(":" + parts.password + "@", ":***@")
    return url


def url_has_password(url: str) -> bool:
    return bool(urlsplit(url).password)


@lru_cache(maxsize=8)
def _secret(arn: str) -> ConnInfo:
    from .aws import client

    raw = client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    doc = json.loads(raw)
    info = ConnInfo(
        host=doc["host"],
        port=int(doc.get("port", 3306)),
        user=doc["username"],
        password=doc["password"],
        database=doc.get("dbname"),
    )
    return with_tls(
        info,
        doc.get("ssl_mode"),
        doc.get("ssl_ca"),
        (f"the secret {arn}'s ssl_mode", f"the secret {arn}'s ssl_ca"),
    )


def with_tls(info: ConnInfo, mode: str | None, ca: str | None, names: tuple[str, str]) -> ConnInfo:
    """`info` with a TLS mode and CA bundle, checked; `names` are the two settings' names as
    the user wrote them, for errors. A CA bundle without a mode verifies the server's
    identity; a CA bundle beside a mode that checks no certificate is refused. A bundle's
    path is made absolute (Spark's workers resolve it elsewhere), its text trimmed (Connector/J
    reads it as PEM only when it starts with the certificate's first line)."""
    for value, name in ((mode, names[0]), (ca, names[1])):
        if value is not None and not isinstance(value, str):
            raise SluiceError(f"{name} is {type(value).__name__}: give it as a string")
    mode = _mode(mode)
    ca = (ca or "").strip() or None
    if not mode:
        mode = "verify-identity" if ca else info.ssl_mode
    if mode not in SSL_MODES:
        raise SluiceError(f"{names[0]}={mode!r}: give one of {', '.join(SSL_MODES)}")
    if ca and mode not in VERIFYING:
        raise SluiceError(
            f"{names[1]} is set but {names[0]} is {mode}, which checks no certificate: set it "
            f"to verify-ca or verify-identity, or leave {names[1]} out"
        )
    if ca and _is_pem(ca):
        if not ca.startswith(PEM_CERTIFICATE):
            raise SluiceError(
                f"{names[1]} is PEM text that does not start with {PEM_CERTIFICATE}: give the "
                "CA bundle's certificates"
            )
    elif ca:
        if not os.path.isfile(ca):
            shown = ca if len(ca) <= 200 else ca[:200] + "..."
            raise SluiceError(
                f"{names[1]}: no file at {shown!r} (give a PEM CA bundle's path, or its text)"
            )
        ca = os.path.abspath(ca)
    return replace(info, ssl_mode=mode, ssl_ca=ca)


PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"


def _mode(text: str | None) -> str:
    """A TLS mode as SSL_MODES spells it (MySQL's VERIFY_IDENTITY is verify-identity)."""
    return (text or "").strip().lower().replace("_", "-")


def _is_pem(ca: str) -> bool:
    return ca.lstrip().startswith("-----BEGIN")


def _ca_named(ca: str | None) -> str:
    if ca is None:
        return "the system's"
    return "given as PEM text" if _is_pem(ca) else ca


def resolve(role: str, contract_url: str | None = None, database: str | None = None) -> ConnInfo:
    """Connection for `role` ("source" or "target").

    Credentials never come from the contract: in order, `SLUICE_<ROLE>_SECRET_ARN` (a Secrets
    Manager secret with host/port/username/password, and optionally ssl_mode and ssl_ca),
    `SLUICE_<ROLE>_URL`, then the contract's password-less URL with `SLUICE_<ROLE>_PASSWORD`.
    `SLUICE_<ROLE>_SSL_MODE` and `SLUICE_<ROLE>_SSL_CA` set TLS whichever it is (over the
    secret's): see SSL_MODES.
    """
    env = role.upper()
    if arn := os.environ.get(f"SLUICE_{env}_SECRET_ARN"):
        info = _secret(arn)
    elif url := os.environ.get(f"SLUICE_{env}_URL"):
        info = parse_url(url)
    elif contract_url:
        info = parse_url(contract_url)
        info = replace(info, password=os.environ.get(f"SLUICE_{env}_PASSWORD", info.password))
    else:
        raise SluiceError(
            f"no {role} database connection: set SLUICE_{env}_URL (mysql://user:pw@host:port) "
            f"or SLUICE_{env}_SECRET_ARN"
        )
    return tls_from_env(info, role).with_database(database or info.database)


def tls_from_env(info: ConnInfo, role: str) -> ConnInfo:
    """`info` with `SLUICE_<ROLE>_SSL_MODE` and `SLUICE_<ROLE>_SSL_CA` applied, over what it
    holds (a secret's settings): a CA bundle alone keeps a verifying mode, a mode its CA."""
    env = role.upper()
    mode = _mode(os.environ.get(f"SLUICE_{env}_SSL_MODE"))
    ca = os.environ.get(f"SLUICE_{env}_SSL_CA") or ""
    if not (mode or ca.strip()):
        return info
    mode = mode or (info.ssl_mode if info.ssl_mode in VERIFYING else "")
    ca = ca.strip() or (info.ssl_ca if mode in VERIFYING else "")
    return with_tls(info, mode, ca, (f"SLUICE_{env}_SSL_MODE", f"SLUICE_{env}_SSL_CA"))


# Encoders only: bound parameters are still escaped, but result values arrive as the server
# sent them (text as str, binary as bytes) so the reader can type whole columns in Arrow.
_RAW_CONV = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}


class ConnectError(SluiceError):
    """The server could not be reached or refused the session; the driver's error is the cause."""


class _Connection(pymysql.connections.Connection):
    """pymysql's connection, with the TLS context of its default mode made once a process.

    In the preferred mode (ConnInfo.ssl_mode), pymysql encrypts when the server offers TLS
    and verifies no certificate. For that it built a context with the system's CA bundle, which it never
    consults, at 16-18 ms of CPU for every connection: a Lambda worker's each, and each
    thread's in the local runtime. Given options, it builds its own context as before."""

    _default_tls: ClassVar[ssl.SSLContext | None] = None

    def _create_ssl_ctx(self, sslp):
        if sslp:
            return super()._create_ssl_ctx(sslp)
        if _Connection._default_tls is None:  # threads may both make one: either serves
            _Connection._default_tls = super()._create_ssl_ctx(sslp)
        return _Connection._default_tls


def _tls_options(info: ConnInfo) -> dict:
    """pymysql's arguments for the connection's TLS mode (preferred: pymysql's default)."""
    if info.ssl_mode == "disabled":
        return {"ssl_disabled": True}
    if info.ssl_mode == "preferred":
        return {}
    return {"ssl": _tls_context(info.ssl_mode, info.ssl_ca)}


@lru_cache(maxsize=16)
def _tls_context(mode: str, ca: str | None) -> ssl.SSLContext:
    """One context a process for each mode and CA bundle (a context costs 16-18 ms of CPU;
    reading a CA bundle, more). pymysql takes a context as is, and then insists on TLS."""
    if mode not in VERIFYING:  # required: encrypted, nothing checked
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    pem = ca is not None and _is_pem(ca)
    try:
        ctx = ssl.create_default_context(cafile=None if pem else ca, cadata=ca if pem else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectError(f"the CA bundle {_ca_named(ca)} cannot be read: {exc}") from exc
    # As pymysql's own contexts: Python 3.13 checks X.509 strictly by default, which the
    # certificates MySQL generates for itself fail.
    ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
    ctx.check_hostname = mode == "verify-identity"
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def connect(
    info: ConnInfo,
    *,
    raw: bool = False,
    local_infile: bool = False,
    read_timeout: int = 600,
    statement_timeout: float | None = None,
):
    """Open a connection with the session every stage relies on.

    UTC session time zone so TIMESTAMP values are read and written unshifted; utf8mb4 so
    4-byte characters survive. With `raw`, no value conversion in the driver. With
    `statement_timeout` (seconds), the server itself ends a statement that runs longer.
    """
    try:
        conn = _Connection(
            host=info.host,
            port=info.port,
            user=info.user,
            password=info.password,
            database=info.database,
            charset="utf8mb4",
            autocommit=True,
            local_infile=local_infile,
            connect_timeout=10,
            read_timeout=read_timeout,
            write_timeout=read_timeout,
            init_command="SET time_zone = '+00:00'",
            conv=dict(_RAW_CONV) if raw else None,
            **_tls_options(info),
        )
    except pymysql.err.MySQLError as exc:
        raise ConnectError(f"cannot connect to {info.described()}: {exc.args[-1]}") from exc
    if statement_timeout:
        try:
            set_statement_timeout(conn, statement_timeout)
        except BaseException:
            conn.close()
            raise
    return conn


def set_statement_timeout(conn, seconds: float) -> None:
    """Have the server end this session's statements after `seconds`: MariaDB's
    max_statement_time (seconds, every statement), MySQL's max_execution_time (milliseconds,
    SELECTs only, from 5.7.8 on; Aurora MySQL reports a MySQL version)."""
    version = conn.get_server_info()
    if "mariadb" in version.lower():
        sql, value = "SET SESSION max_statement_time = %s", float(seconds)
    elif _version_tuple(version) >= (5, 7, 8):
        sql, value = "SET SESSION max_execution_time = %s", int(seconds * 1000)
    else:
        raise SluiceError(
            f"MySQL {version} cannot limit a statement's time (MySQL 5.7.8 and MariaDB 10.1 "
            "can): set SLUICE_SOURCE_STATEMENT_TIMEOUT=0 to read without a statement timeout"
        )
    with conn.cursor() as cur:
        cur.execute(sql, (value,))


def _version_tuple(version: str) -> tuple[int, ...]:
    numbers = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    return tuple(int(n) for n in numbers.groups()) if numbers else (0,)


# Under the extract function's Lambda timeout (300 s in template.yaml): the server ends a read
# that a timed-out worker could no longer receive, rather than run it for nobody.
DEFAULT_SOURCE_STATEMENT_TIMEOUT = 240.0


def source_statement_timeout() -> float | None:
    """Seconds a page read may run on the source (SLUICE_SOURCE_STATEMENT_TIMEOUT; 0: no limit)."""
    text = os.environ.get("SLUICE_SOURCE_STATEMENT_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_SOURCE_STATEMENT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise SluiceError(
            f"SLUICE_SOURCE_STATEMENT_TIMEOUT={text!r}: give the seconds a source read may run "
            "(a number, 0 for no limit)"
        )
    return seconds or None


# ---------------------------------------------------------------- reuse across invocations

# One connection per worker, database and mode: a worker is a process on Lambda and in a Spark
# executor, a thread in the local runtime (its consumers, its state machine executions). A
# pymysql connection must never serve two threads at once, and a worker's connections are
# what the connection cap counts (README, "Connections to the source").
_pool: dict[tuple, tuple[threading.Thread, object]] = {}
_pool_lock = threading.Lock()

# How long a load session (a local_infile connection) waits on its socket, each way, before it
# gives up with a lost-connection error, which is retried. Above the pauses of a sound load: the
# server stops reading the uploaded file while a row waits for its lock (InnoDB's 50 s by
# default) and waits for the table's metadata lock (targets.mysql.METADATA_LOCK_WAIT_SECONDS)
# before. Well under the load function's 300 s: an upload or a reply that will never come (the
# server host gone in a failover; 600 s, the default, outlasts the function) fails and is
# retried within the invocation instead of hanging it. (A connection killed mid-upload is heard
# of late too: about 100 s on Linux, while the server's closed socket lingers in FIN-WAIT-2.)
LOAD_SOCKET_TIMEOUT = 120


def pooled(
    info: ConnInfo,
    *,
    raw: bool = False,
    local_infile: bool = False,
    statement_timeout: float | None = None,
):
    """This worker's connection to a database in a mode, reused across invocations (a warm
    Lambda, a Spark worker) and replaced when it has died."""
    me = threading.current_thread()
    k = (me, info, raw, local_infile, statement_timeout)
    with _pool_lock:
        _close_orphans()
        held = _pool.get(k)
        if held is not None:
            conn = held[1]
            if _alive(conn):
                return conn
            _pool.pop(k, None)
            _close(conn)
        conn = connect(
            info,
            raw=raw,
            local_infile=local_infile,
            read_timeout=LOAD_SOCKET_TIMEOUT if local_infile else 600,
            statement_timeout=statement_timeout,
        )
        _pool[k] = (me, conn)
        return conn


def drop_dead() -> int:
    """Close and forget this worker's pooled connections that no longer answer (killed, lost
    in a restart); returns how many. The next `pooled` call opens a fresh one."""
    me = threading.current_thread()
    with _pool_lock:
        dead = [k for k, (t, conn) in _pool.items() if t is me and not _alive(conn)]
        for k in dead:
            _close(_pool.pop(k)[1])
        return len(dead)


def close_pooled() -> None:
    """Close every pooled connection (tests and the local runtime start afresh)."""
    with _pool_lock:
        for _, conn in _pool.values():
            _close(conn)
        _pool.clear()


def _alive(conn) -> bool:
    if not conn.open:
        return False
    try:
        conn.ping(reconnect=False)
    except pymysql.err.Error:  # killed, timed out, or the server went away
        return False
    return True


def _close(conn) -> None:
    if conn.open:
        with contextlib.suppress(pymysql.err.Error):  # already gone: nothing left to close
            conn.close()


def _close_orphans() -> None:
    """Close the connections of workers (threads) that have ended; the caller holds the lock."""
    for k in [k for k, (t, _) in _pool.items() if not t.is_alive()]:
        _close(_pool.pop(k)[1])
