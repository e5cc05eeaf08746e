"""MySQL connections: where credentials come from, and the session every stage uses."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, replace
from functools import lru_cache
from urllib.parse import unquote, urlsplit

import pymysql
import pymysql.converters
import pymysql.cursors

from .errors import SluiceError


@dataclass(frozen=True, slots=True)
class ConnInfo:
    host: str
    port: int
    user: str
    password: str
    database: str | None = None

    def redacted(self) -> str:
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database or ''}"

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
    return ConnInfo(
        host=doc["host"],
        port=int(doc.get("port", 3306)),
        user=doc["username"],
        password=doc["password"],
        database=doc.get("dbname"),
    )


def resolve(role: str, contract_url: str | None = None, database: str | None = None) -> ConnInfo:
    """Connection for `role` ("source" or "target").

    Credentials never come from the contract: in order, `SLUICE_<ROLE>_SECRET_ARN` (a Secrets
    Manager secret with host/port/username/password), `SLUICE_<ROLE>_URL`, then the contract's
    password-less URL with `SLUICE_<ROLE>_PASSWORD`.
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
    return info.with_database(database or info.database)


# Encoders only: bound parameters are still escaped, but result values arrive as the server
# sent them (text as str, binary as bytes) so the reader can type whole columns in Arrow.
_RAW_CONV = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}


def connect(
    info: ConnInfo, *, raw: bool = False, local_infile: bool = False, read_timeout: int = 600
):
    """Open a connection with the session every stage relies on.

    UTC session time zone so TIMESTAMP values are read and written unshifted; utf8mb4 so
    4-byte characters survive. With `raw`, no value conversion in the driver.
    """
    try:
        return pymysql.connect(
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
        )
    except pymysql.err.OperationalError as exc:
        raise SluiceError(f"cannot connect to {info.redacted()}: {exc.args[-1]}") from exc


# ---------------------------------------------------------------- reuse across invocations

_pool: dict[tuple, object] = {}
_pool_lock = threading.Lock()


def pooled(info: ConnInfo, *, raw: bool = False, local_infile: bool = False):
    """One connection per database and mode per process (a warm Lambda, a Spark worker),
    reused across invocations and replaced when it has died."""
    k = (info, raw, local_infile)
    with _pool_lock:
        conn = _pool.get(k)
        if conn is not None:
            try:
                conn.ping(reconnect=False)
                return conn
            except Exception:  # a dead connection is replaced, whatever killed it
                _pool.pop(k, None)
        conn = connect(info, raw=raw, local_infile=local_infile)
        _pool[k] = conn
        return conn


def close_pooled() -> None:
    """Close every pooled connection (tests and the local runtime start afresh)."""
    with _pool_lock:
        for conn in _pool.values():
            if conn.open:
                conn.close()
        _pool.clear()
