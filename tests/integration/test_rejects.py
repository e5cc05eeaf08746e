"""Rows a target refuses go to rejected/ with their key and reason; the page completes and
extracted = loaded + rejected holds."""

from __future__ import annotations

import json

from sluice import aws
from sluice.stages import _manifest


def refusing_target(connect, new_database, rows: int, prefix: str = "rej") -> tuple[str, str]:
    """(source, target) databases: source `items` holds ids 1..rows with qty = id % 7; the
    target's `items` has compatible column types but a rule of its own (qty < 5) that the rows
    with qty 5 and 6 break."""
    source, target = new_database(f"{prefix}_src"), new_database(f"{prefix}_dst")
    with connect(source).cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, qty INT NOT NULL)")
        cur.executemany(
            "INSERT INTO items VALUES (%s, %s)", [(i, i % 7) for i in range(1, rows + 1)]
        )
    with connect(target).cursor() as cur:
        cur.execute(
            "CREATE TABLE items (id INT PRIMARY KEY, qty INT NOT NULL, CONSTRAINT small CHECK (qty < 5))"
        )
    return source, target


def test_rows_a_mysql_target_refuses_are_rejected_with_their_reason(
    local_stack, connect, new_database
):
    source, target = refusing_target(connect, new_database, 100)
    doc = {
        "version": 1,
        "source": {"database": source},
        "target": {"kind": "mysql", "database": target},
        "defaults": {"page_size": 30},
        "tables": [{"source": "items", "key": ["id"], "target": {"table": "items"}}],
    }
    arn = local_stack.start_execution({"contract": doc, "run_id": "rejects", "poll_seconds": 1})
    desc = local_stack.wait(arn, timeout=60)
    assert desc["status"] == "SUCCEEDED"

    progress = _manifest(local_stack.environment["SLUICE_MANIFEST_TABLE"]).progress("rejects")[
        "items"
    ]
    refused = sorted(i for i in range(1, 101) if i % 7 >= 5)
    assert (progress.extracted, progress.loaded, progress.rejected) == (
        100,
        100 - len(refused),
        len(refused),
    )

    s3 = aws.client("s3")
    bucket = local_stack.environment["SLUICE_BUCKET"]
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=bucket, Prefix="runs/rejects/rejected/items/")[
            "Contents"
        ]
    ]
    lines = [
        json.loads(line)
        for k in keys
        for line in s3.get_object(Bucket=bucket, Key=k)["Body"].read().splitlines()
    ]
    assert sorted(r["key"]["id"] for r in lines) == refused
    assert all("CONSTRAINT `small` failed" in r["reason"] for r in lines)
    with connect(target).cursor() as cur:
        cur.execute("SELECT id FROM items ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == [i for i in range(1, 101) if i % 7 < 5]
