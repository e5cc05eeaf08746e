"""Shared fixtures: the MariaDB server, throwaway databases, and paths."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pymysql
import pytest

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
SHARED = ROOT.parent / "shared"
SAKILA = SHARED / "datasets" / "sakila"


def _mysql_url() -> str:
    if url := os.environ.get("SLUICE_MYSQL_URL"):
        return url
    env_file = ROOT / ".sluice" / "mysql.env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("SLUICE_MYSQL_URL="):
                return line.split("=", 1)[1].strip()
    return "mysql://root@127.0.0.1:3306"


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """Server URL without a database (mysql://user[:pw]@host:port); `make test` sets it."""
    return _mysql_url()


@pytest.fixture(scope="session")
def mysql_info(mysql_url):
    from sluice.db import parse_url

    return parse_url(mysql_url)


@pytest.fixture
def mysql_env(monkeypatch, mysql_url) -> str:
    """Point sluice's source and target connections at the test server."""
    monkeypatch.setenv("SLUICE_SOURCE_URL", mysql_url)
    monkeypatch.setenv("SLUICE_TARGET_URL", mysql_url)
    return mysql_url


@pytest.fixture
def connect(mysql_info) -> Iterator[Callable[..., pymysql.connections.Connection]]:
    """connect(database=None) -> a pymysql connection (utf8mb4, autocommit), closed afterwards."""
    opened = []

    def _connect(database: str | None = None, **kwargs):
        conn = pymysql.connect(
            host=mysql_info.host,
            port=mysql_info.port,
            user=mysql_info.user,
            password=mysql_info.password,
            database=database,
            charset="utf8mb4",
            autocommit=True,
            **kwargs,
        )
        opened.append(conn)
        return conn

    yield _connect
    for c in opened:
        c.close()


@pytest.fixture
def new_database(connect) -> Iterator[Callable[[str], str]]:
    """new_database(prefix) -> a unique, empty database name; every one is dropped afterwards."""
    made = []
    admin = connect()

    def _new(prefix: str = "t") -> str:
        name = f"sluice_test_{prefix}_{uuid.uuid4().hex[:8]}"
        with admin.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        made.append(name)
        return name

    yield _new
    with admin.cursor() as cur:
        for name in made:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def require_shared() -> None:
    """Skip (with the reason) where ../shared is absent, as in a user's clone; never under CI."""
    if SAKILA.is_dir():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the Sakila dataset is missing at {SAKILA}")
    pytest.skip(f"needs ../shared/datasets/sakila beside the project (not found at {SAKILA})")
