"""Shared fixtures: the MariaDB server, throwaway databases, process state, and paths."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@pytest.fixture(scope="session")
def open_connection(mysql_info) -> Callable[..., pymysql.connections.Connection]:
    """open_connection(database=None, **kwargs) -> a new pymysql connection (utf8mb4,
    autocommit) that the caller closes: for session- and module-scoped fixtures, which cannot
    use `connect`."""

    def _open(database: str | None = None, **kwargs) -> pymysql.connections.Connection:
        return pymysql.connect(
            host=mysql_info.host,
            port=mysql_info.port,
            user=mysql_info.user,
            password=mysql_info.password,
            database=database,
            charset="utf8mb4",
            autocommit=True,
            **kwargs,
        )

    return _open


@pytest.fixture
def connect(open_connection) -> Iterator[Callable[..., pymysql.connections.Connection]]:
    """connect(database=None) -> a pymysql connection (utf8mb4, autocommit), closed afterwards."""
    opened = []

    def _connect(database: str | None = None, **kwargs):
        conn = open_connection(database, **kwargs)
        opened.append(conn)
        return conn

    yield _connect
    for c in opened:
        c.close()


@contextmanager
def _unique_databases(admin) -> Iterator[Callable[[str], str]]:
    """new(prefix) -> a unique, empty database name, made through `admin`; every one is
    dropped on leaving."""
    made = []

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


@pytest.fixture
def new_database(connect) -> Iterator[Callable[[str], str]]:
    """new_database(prefix) -> a unique, empty database name; every one is dropped afterwards."""
    with _unique_databases(connect()) as new:
        yield new


@pytest.fixture(scope="session")
def session_database(open_connection) -> Iterator[Callable[[str], str]]:
    """session_database(prefix) -> as `new_database`, but dropped at the end of the session:
    a source that several tests read and none writes, built once."""
    admin = open_connection()
    with _unique_databases(admin) as new:
        yield new
    admin.close()


def _reset_process_caches() -> None:
    from sluice import aws, stages

    stages.reset_caches()
    aws.reset_clients()


@pytest.fixture
def isolated_process_state() -> Iterator[None]:
    """Fresh per-process caches before and after (as a cold start finds them), and the
    environment left as found. Suites that run stages or the local runtime use it in an autouse
    fixture of their own.

    The stages cache contracts, source tables and connections per process (as a warm Lambda
    would); the sample events reuse one run id, so a cache kept between tests would hand a
    later test an earlier test's contract. LocalStack also exports the template's variables
    into os.environ, which must not leak into other tests.
    """
    saved = dict(os.environ)
    _reset_process_caches()
    yield
    _reset_process_caches()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def wait_until_queues_empty() -> Callable[..., None]:
    """wait_until_queues_empty(stack, timeout=20): returns once no queue of a LocalStack holds
    a message, visible or in flight; TimeoutError after `timeout` seconds."""
    return _wait_until_queues_empty


def _wait_until_queues_empty(stack, timeout: float = 20) -> None:
    from sluice import aws

    sqs = aws.client("sqs")
    urls = {queue: stack.refs[queue] for queue in stack.template.queues}
    deadline = time.monotonic() + timeout
    while True:
        pending, where = 0, {}
        for queue, url in urls.items():
            attrs = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            n = int(attrs["ApproximateNumberOfMessages"])
            n += int(attrs["ApproximateNumberOfMessagesNotVisible"])
            pending += n
            if n:
                where[queue] = n
        if pending == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{pending} messages still queued after {timeout} s: {where}")
        time.sleep(0.05)


def require_shared() -> None:
    """Skip (with the reason) where ../shared is absent, as in a user's clone; never under CI."""
    if SAKILA.is_dir():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the Sakila dataset is missing at {SAKILA}")
    pytest.skip(f"needs ../shared/datasets/sakila beside the project (not found at {SAKILA})")
