"""The bulk path into MySQL on local PySpark: the same target rows as the Lambda path, through
the state machine's Glue task, and a failed range re-run alone."""

from __future__ import annotations

import json

import pytest
from sluice import aws, bulk

from .bulk_helpers import KEYS, ROWS, assert_paths, contract, create_source, ensure_spark, run
from .conftest import hex_rows

pytestmark = [pytest.mark.mysql, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def spark():
    ensure_spark()
    from sluice.bulk_spark import local_session

    return local_session()


@pytest.fixture
def source(connect, new_database) -> str:
    name = new_database("bulk_src")
    create_source(connect(), name)
    return name


def test_bulk_and_lambda_paths_write_identical_mysql_tables(
    source, new_database, connect, mysql_env, tmp_path
):
    by_lambda, by_bulk = new_database("by_lambda"), new_database("by_bulk")
    lam = run(
        contract(source, {"kind": "mysql", "database": by_lambda}, path="lambda"), tmp_path, "l"
    )
    blk = run(contract(source, {"kind": "mysql", "database": by_bulk}, path="bulk"), tmp_path, "b")
    assert_paths(lam, "lambda")
    assert_paths(blk, "bulk")
    conn = connect()
    for table, key in KEYS.items():
        want = hex_rows(conn, source, table, key)
        assert len(want) == ROWS[table]
        assert hex_rows(conn, by_lambda, table, key) == want
        assert hex_rows(conn, by_bulk, table, key) == want


def test_a_failed_range_fails_the_run_and_a_rerun_processes_only_it(
    source, new_database, connect, mysql_env, tmp_path
):
    """A row in the target that the source lacks makes its range's key checksum differ: the
    job fails that range (the others load), the run ends not verified; with the row gone, the
    job run again for the same run processes that range alone, and verification passes."""
    from sluice.local.bulk_runner import LocalBulkRunner
    from sluice.local.runtime import LocalStack

    target = new_database("bulk_dst")
    doc = contract(source, {"kind": "mysql", "database": target}, path="bulk")
    doc["tables"] = [t for t in doc["tables"] if t["source"] == "order_lines"]
    admin = connect()
    with admin.cursor() as cur:  # order_id 1 is in the first range of 250 rows
        cur.execute(f"CREATE TABLE `{target}`.order_lines LIKE `{source}`.order_lines")
        cur.execute(f"INSERT INTO `{target}`.order_lines VALUES (1, 'zzz-extra', 0)")
    with LocalStack() as st:
        arn = st.start_execution({"contract": doc, "run_id": "bulk-rerun", "poll_seconds": 1})
        desc = st.wait(arn, timeout=300)
        assert desc["status"] == "FAILED"
        scheduled = [
            e["taskScheduledEventDetails"] for e in st.history(arn) if e["type"] == "TaskScheduled"
        ]
        assert any(d["resource"] == "startJobRun.sync" for d in scheduled)
        failed = _failed_pages(st, "bulk-rerun")
        assert [p["page"] for p in failed] == [1]
        assert failed[0]["stage"] == "bulk" and "key checksum" in failed[0]["error"]

        with admin.cursor() as cur:
            cur.execute(f"DELETE FROM `{target}`.order_lines WHERE code = 'zzz-extra'")
        env = st.environment
        summary = LocalBulkRunner()(
            {
                "--run_id": "bulk-rerun",
                "--table": "order_lines",
                "--ranges_key": bulk.ranges_key("bulk-rerun", "order_lines"),
                "--bucket": env["SLUICE_BUCKET"],
                "--manifest_table": env["SLUICE_MANIFEST_TABLE"],
            }
        )
        assert (summary["ranges"], summary["processed"], summary["failed"]) == (4, 1, 0)
        report = st.invoke("VerifyFunction", {"run_id": "bulk-rerun"})
    assert report["ok"], report["verdict"]
    conn = connect()
    assert hex_rows(conn, target, "order_lines", KEYS["order_lines"]) == hex_rows(
        conn, source, "order_lines", KEYS["order_lines"]
    )


def _failed_pages(st, run_id: str) -> list[dict]:
    from sluice.stages import _manifest

    progress = _manifest(st.environment["SLUICE_MANIFEST_TABLE"]).progress(run_id)
    return progress["order_lines"].failed_pages


def test_the_plan_hands_bulk_ranges_to_s3_and_records_them_as_pages(
    source, new_database, mysql_env, unwired_stack
):
    """Bulk tables' ranges go to runs/<run>/plan/bulk-<table>.json and the manifest, never to
    the page batches the Distributed Map sends to SQS."""
    target = new_database("bulk_plan")
    doc = contract(source, {"kind": "mysql", "database": target}, path="bulk")
    doc["tables"][0]["path"] = "lambda"  # items by Lambda, order_lines in bulk
    plan = unwired_stack.invoke("PlanFunction", {"contract": doc, "run_id": "bulk-plan"})
    assert plan["bulk"] == [
        {"table": "order_lines", "ranges_key": "runs/bulk-plan/plan/bulk-order_lines.json"}
    ]
    assert plan["bulk_count"] == 1
    s3 = aws.client("s3")
    bucket = unwired_stack.environment["SLUICE_BUCKET"]
    ranges = json.loads(
        s3.get_object(Bucket=bucket, Key=plan["bulk"][0]["ranges_key"])["Body"].read()
    )
    assert [r["page"] for r in ranges["ranges"]] == [1, 2, 3, 4]
    batches = json.loads(s3.get_object(Bucket=bucket, Key=plan["batches_key"])["Body"].read())
    tables = {json.loads(e["MessageBody"])["table"] for b in batches for e in b["Entries"]}
    assert tables == {"items"}
    by_table = {t["table"]: t for t in plan["tables"]}
    assert (by_table["items"]["path"], by_table["order_lines"]["path"]) == ("lambda", "bulk")
    assert by_table["order_lines"]["pages"] == 4


TRANSFORM = '''
import pyarrow as pa
import pyarrow.compute as pc


def shout(page: pa.Table) -> pa.Table:
    """Ten times the quantity, and no lines of order 7: the same on both paths."""
    page = page.filter(pc.not_equal(page.column("order_id"), 7))
    return page.set_column(page.schema.get_field_index("qty"), "qty", pc.multiply(page.column("qty"), 10))
'''


def test_a_contracts_own_transform_runs_alike_on_both_paths(
    source, new_database, connect, mysql_env, tmp_path
):
    (tmp_path / "bulk_shapes.py").write_text(TRANSFORM)
    targets = {}
    for path in ("lambda", "bulk"):
        targets[path] = new_database(f"ut_{path}")
        doc = contract(source, {"kind": "mysql", "database": targets[path]}, path=path)
        doc["tables"] = [t for t in doc["tables"] if t["source"] == "order_lines"]
        doc["tables"][0]["transform"] = "bulk_shapes:shout"
        summary = run(doc, tmp_path, f"ut-{path}")
        assert summary["ok"], summary["verdict"]
        t = summary["tables"]["order_lines"]
        assert (t["extracted"], t["loaded"], t["rejected"]) == (
            900,
            894,
            6,
        )  # order 7: 6 lines dropped
    conn = connect()
    by_lambda = hex_rows(conn, targets["lambda"], "order_lines", KEYS["order_lines"])
    assert len(by_lambda) == 894
    assert hex_rows(conn, targets["bulk"], "order_lines", KEYS["order_lines"]) == by_lambda
    with conn.cursor() as cur:
        cur.execute(f"SELECT SUM(qty) FROM `{source}`.order_lines WHERE order_id <> 7")
        (want,) = cur.fetchone()
        for target in targets.values():
            cur.execute(f"SELECT SUM(qty) FROM `{target}`.order_lines")
            assert cur.fetchone()[0] == 10 * want
