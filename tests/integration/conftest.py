"""Integration fixtures: demo databases, the local stack in moto, and SQL-side row comparison."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator, Sequence

import pymysql
import pytest
from sluice import aws
from sluice.db import ConnInfo
from sluice.db import connect as sluice_connect
from sluice.demo_data import create_demo_database

DEMO_SCALE = 0.01


@pytest.fixture(autouse=True)
def _isolated_process_state(isolated_process_state) -> None:
    """Each test starts with fresh per-process caches and leaves the environment as it found
    it (tests/conftest.py says why)."""


@pytest.fixture
def raw(mysql_info):
    """A connection as extract uses it: values arrive undecoded."""
    c = sluice_connect(mysql_info, raw=True)
    yield c
    c.close()


@pytest.fixture
def demo_source(connect, new_database) -> str:
    """A fresh demo shop database (small scale) under a unique name, dropped afterwards."""
    name = new_database("demo")
    create_demo_database(connect(), name, scale=DEMO_SCALE)
    return name


@dataclasses.dataclass(frozen=True)
class TargetAccount:
    """A target database and the account that may use it (info names no database)."""

    database: str
    info: ConnInfo

    @property
    def url(self) -> str:
        i = self.info
        return f"mysql://{i.user}:{i.password}@{i.host}:{i.port}"


@pytest.fixture
def target_only_account(connect, new_database, mysql_info) -> Iterator[TargetAccount]:
    """A fresh target database and an account that sees nothing else, as the account of a
    separate target server would: it cannot read the source's definitions or rows."""
    admin = connect()
    database = new_database("dst")
    user, password = f"sluice_t_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with admin.cursor() as cur:
        try:
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        except pymysql.err.OperationalError as exc:
            pytest.skip(f"the test server's account cannot create users: {exc.args[-1]}")
        try:
            cur.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'%'")
            info = dataclasses.replace(mysql_info, user=user, password=password, database=None)
            yield TargetAccount(database, info)
        finally:
            cur.execute(f"DROP USER '{user}'@'%'")


@pytest.fixture
def local_stack(mysql_env):
    """The template's stack in moto with in-process handlers, wired as deployed (S3 -> SQS -> Lambda)."""
    from sluice.local.runtime import LocalStack

    with LocalStack() as st:
        yield st


@pytest.fixture
def unwired_stack(local_stack, wait_until_queues_empty):
    """The stack without S3 -> SQS notifications, so handlers run only when a test invokes
    them, as with `sam local invoke`; no consumer thread handles anything meanwhile."""
    s3 = aws.client("s3")
    s3.put_bucket_notification_configuration(
        Bucket=local_stack.environment["SLUICE_BUCKET"], NotificationConfiguration={}
    )
    # Configuring notifications sends s3:TestEvent messages; let the consumers finish them.
    wait_until_queues_empty(local_stack)
    return local_stack


def hex_rows(
    conn, database: str, table: str, key: Sequence[str], columns: Sequence[str] | None = None
) -> list[tuple]:
    """Every row as the server sees it, one hex string per column, in key order.

    Computed in SQL (HEX of the value as binary, 'NULL' for NULL, which no hex string
    spells), so a comparison of two tables does not depend on Sluice's own readers.
    """
    with conn.cursor() as cur:
        if columns is None:
            cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (database, table),
            )
            columns = [r[0] for r in cur.fetchall()]
        exprs = ", ".join(f"COALESCE(HEX(CAST(`{c}` AS BINARY)), 'NULL')" for c in columns)
        order = ", ".join(f"`{k}`" for k in key)
        cur.execute(f"SELECT {exprs} FROM `{database}`.`{table}` ORDER BY {order}")
        return [tuple(r) for r in cur.fetchall()]


@pytest.fixture
def table_hex_rows(connect) -> Callable[..., list[tuple]]:
    """table_hex_rows(database, table, key, columns=None) -> hex_rows on a fresh connection."""
    conn = connect()

    def _rows(database: str, table: str, key: Sequence[str], columns=None) -> list[tuple]:
        return hex_rows(conn, database, table, key, columns)

    return _rows
