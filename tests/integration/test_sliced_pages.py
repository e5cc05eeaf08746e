"""Pages loaded a slice at a time: one LOAD DATA statement and transaction per page however
many slices it has, refused rows isolated as before, and whole runs whose pages span many
slices load every row and verify page by page (the checksums summed slice by slice)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from sluice import aws, checksum, stages, staging
from sluice.db import connect as sluice_connect
from sluice.stages import _manifest
from sluice.targets.mysql import load_page_slices
from sluice.types import Column, arrow_schema

from .test_deep_verify import deep_verify
from .test_state_machine import run

pytestmark = [pytest.mark.mysql]

ITEMS_DDL = (
    "CREATE TABLE items (id INT PRIMARY KEY, qty INT NOT NULL, note VARCHAR(20) NULL, "
    "CONSTRAINT small CHECK (qty < 5))"
)


def _column(name: str, data_type: str, nullable: bool = True) -> Column:
    return Column.from_information_schema(
        name=name,
        data_type=data_type,
        column_type=data_type,
        nullable=nullable,
        precision=None,
        scale=None,
        datetime_precision=None,
        charset="utf8mb4",
        is_json=False,
    )


SCHEMA = arrow_schema(
    [_column("id", "int", False), _column("qty", "int", False), _column("note", "varchar")]
)


def staged(rows: list[tuple]) -> bytes:
    """A transformed page as staged: Arrow IPC, stored in batches of 3 rows."""
    page = pa.Table.from_pylist(
        [dict(zip(SCHEMA.names, r, strict=True)) for r in rows], schema=SCHEMA
    )
    return staging.write_arrow(SCHEMA, page.to_batches(max_chunksize=3))[0]


def session_count(conn, name: str) -> int:
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE %s", (name,))
        return int(cur.fetchone()[1])


def rows_of(connect, database: str) -> list[tuple]:
    with connect(database).cursor() as cur:
        cur.execute("SELECT id, qty, note FROM items ORDER BY id")
        return [tuple(r) for r in cur.fetchall()]


@pytest.fixture
def load_conn(mysql_info):
    c = sluice_connect(mysql_info, local_infile=True)
    yield c
    c.close()


def load(load_conn, database: str, body: bytes):
    return load_page_slices(
        load_conn,
        database,
        "items",
        staging.arrow_schema_of(body),
        lambda: staging.iter_arrow(body, 2),
        ["id"],
    )


def test_a_page_of_many_slices_is_one_load_data_statement_and_one_commit(
    load_conn, connect, new_database
):
    target = new_database("sl_dst")
    with connect(target).cursor() as cur:
        cur.execute(ITEMS_DDL)
        cur.execute("INSERT INTO items VALUES (4, 1, 'old')")
    rows = [(i, i % 5, None if i % 3 else f"n\t{i}\\") for i in range(1, 12)]
    body = staged(rows)
    loads, commits = session_count(load_conn, "Com_load"), session_count(load_conn, "Com_commit")

    written, rejected = load(load_conn, target, body)

    assert (written, len(rejected)) == (11, 0)
    assert session_count(load_conn, "Com_load") - loads == 1
    assert session_count(load_conn, "Com_commit") - commits == 1
    assert rows_of(connect, target) == rows  # row 4 replaced, every value exact
    assert load(load_conn, target, body) == (11, staging.NO_REJECTS)  # again: the same rows
    assert rows_of(connect, target) == rows


def test_rows_refused_in_later_slices_are_isolated_and_the_rest_loaded(
    load_conn, connect, new_database
):
    target = new_database("sl_dst")
    with connect(target).cursor() as cur:
        cur.execute(ITEMS_DDL)
    rows = [(i, 9 if i in (4, 5, 10) else 1, f"r{i}") for i in range(1, 12)]
    body = staged(rows)

    written, rejected = load(load_conn, target, body)

    assert written == 8
    assert rejected.keys == [{"id": 4}, {"id": 5}, {"id": 10}]
    assert all("CONSTRAINT `small` failed" in r for r in rejected.reasons)
    assert rows_of(connect, target) == [r for r in rows if r[0] not in (4, 5, 10)]
    found, in_order = stages._staged_sum(body, ["id"])
    assert in_order is True
    assert stages._rows_written_sum(
        body, ["id"], rejected.keys, found, in_order
    ) == checksum.rows_written_sum(staging.read_arrow(body), ["id"], rejected.keys)


# ---------------------------------------------------------------- whole runs, tiny slices


def test_mysql_runs_whose_pages_span_many_slices_load_and_verify(
    local_stack, connect, new_database, monkeypatch
):
    monkeypatch.setattr(stages, "SLICE_ROWS", 3)
    source, target = new_database("sl_src"), new_database("sl_dst")
    with connect(source).cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, qty INT NOT NULL)")
        cur.executemany("INSERT INTO items VALUES (%s, %s)", [(i, i % 7) for i in range(1, 41)])
        # Text keys in the collation's order (a, B, c...), which is not Arrow's (B, a, c...).
        cur.execute("CREATE TABLE tags (name VARCHAR(10) PRIMARY KEY, n INT NOT NULL)")
        names = [f"{c}{i}" for i, c in enumerate("aBcDeFgHiJkLmNoPqRsT")]
        cur.executemany("INSERT INTO tags VALUES (%s, %s)", [(s, i) for i, s in enumerate(names)])
    with connect(target).cursor() as cur:
        cur.execute(
            "CREATE TABLE items (id INT PRIMARY KEY, qty INT NOT NULL, CONSTRAINT small CHECK (qty < 5))"
        )
    doc = {
        "version": 1,
        "source": {"database": source},
        "target": {"kind": "mysql", "database": target},
        "defaults": {"page_size": 10},
        "tables": [
            {"source": "items", "key": ["id"], "target": {"table": "items"}},
            {"source": "tags", "key": ["name"], "target": {"table": "tags"}},
        ],
    }
    desc, _ = run(local_stack, doc, "sliced-mysql")
    assert desc["status"] == "SUCCEEDED", desc.get("cause")

    report = deep_verify(local_stack, "sliced-mysql")

    assert report["ok"] is True, report["verdict"]
    refused = [i for i in range(1, 41) if i % 7 >= 5]
    assert report["tables"]["items"]["rejected_rows"] == len(refused)
    with connect(target).cursor() as cur:
        cur.execute("SELECT id FROM items ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == [i for i in range(1, 41) if i not in refused]
    with connect(target).cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM tags")
        assert cur.fetchone()[0] == len(names)


def test_dynamodb_pages_refuse_a_key_repeated_in_another_slice_and_verify(
    local_stack, connect, new_database, monkeypatch
):
    monkeypatch.setattr(stages, "SLICE_ROWS", 2)
    source = new_database("sl_src")
    with connect(source).cursor() as cur:
        cur.execute("CREATE TABLE members (id INT PRIMARY KEY, org VARCHAR(5), email VARCHAR(9))")
        # (org, email) is the item's key: ids 7 and 8 repeat ids 1 and 2, slices apart.
        rows = [(1, "a", "x"), (2, "a", "y"), (3, "b", "x"), (4, "b", "y"), (5, "c", "x")]
        rows += [(6, "c", "y"), (7, "a", "x"), (8, "a", "y"), (9, "d", "x")]
        cur.executemany("INSERT INTO members VALUES (%s, %s, %s)", rows)
    doc = {
        "version": 1,
        "source": {"database": source},
        "target": {
            "kind": "dynamodb",
            "tables": {"sl_members": {"partition_key": "PK", "sort_key": "SK"}},
        },
        "defaults": {"page_size": 20},
        "tables": [
            {
                "source": "members",
                "key": ["id"],
                "target": {
                    "table": "sl_members",
                    "partition_key": "ORG#{org}",
                    "sort_key": "EMAIL#{email}",
                },
            }
        ],
    }
    desc, _ = run(local_stack, doc, "sliced-ddb")
    assert desc["status"] == "SUCCEEDED", desc.get("cause")

    progress = _manifest(local_stack.environment["SLUICE_MANIFEST_TABLE"]).progress("sliced-ddb")
    assert (progress["members"].loaded, progress["members"].rejected) == (7, 2)
    s3, bucket = aws.client("s3"), local_stack.environment["SLUICE_BUCKET"]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="runs/sliced-ddb/rejected/members/")
    (key,) = [o["Key"] for o in listed["Contents"]]
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    lines = [json.loads(line) for line in body.splitlines()]
    assert [r["key"] for r in lines] == [{"id": 7}, {"id": 8}]
    assert all(r["reason"].startswith("duplicate target key") for r in lines)
    report = deep_verify(local_stack, "sliced-ddb")
    assert report["ok"] is True, report["verdict"]
