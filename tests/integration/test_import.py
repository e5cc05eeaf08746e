"""New DynamoDB tables by Import from S3: the real state machine and handlers, moto's import.

Each test runs statemachine/migration.asl.json in the local stack on a small MariaDB table
whose target table the contract says an import creates ("load": "import").
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable

import pytest
from sluice import aws, ddb_import, stages, staging

from .test_state_machine import entered, run

pytestmark = [pytest.mark.mysql, pytest.mark.slow]

TABLE = "imp_items"


@pytest.fixture
def source_db(new_database, connect) -> Callable[..., str]:
    """source_db(rows, groups=None) -> a database with table `items` (ids 1..rows); `grp`
    cycles through `groups` values when given, else equals the id."""

    def make(rows: int, groups: int | None = None) -> str:
        db = new_database("imp")
        with connect(db).cursor() as cur:
            cur.execute(
                "CREATE TABLE items (id INT PRIMARY KEY, grp INT NOT NULL, "
                "name VARCHAR(40) NOT NULL, price DECIMAL(8,2), data BLOB)"
            )
            cur.executemany(
                "INSERT INTO items VALUES (%s, %s, %s, %s, %s)",
                [
                    (i, i % groups if groups else i, f"item {i}", f"{i}.50", bytes([i % 256]) * 3)
                    for i in range(1, rows + 1)
                ],
            )
        return db

    return make


def contract(database: str, *, pk: str = "ITEM#{id}", page_size: int = 10) -> dict:
    return {
        "version": 1,
        "source": {"database": database},
        "target": {
            "kind": "dynamodb",
            "tables": {
                TABLE: {
                    "partition_key": "PK",
                    "sort_key": "SK",
                    "load": "import",
                    "gsis": [{"name": "ByName", "partition_key": "GSI1PK"}],
                }
            },
        },
        "defaults": {"page_size": page_size},
        "tables": [
            {
                "source": "items",
                "key": ["id"],
                "target": {
                    "table": TABLE,
                    "partition_key": pk,
                    "sort_key": "ITEM",
                    "attributes": {"GSI1PK": "NAME#{name}"},
                },
            }
        ],
    }


def manifest(st):
    return stages._manifest(st.environment["SLUICE_MANIFEST_TABLE"])


def scan(table: str) -> list[dict]:
    ddb, items, kwargs = aws.client("dynamodb"), [], {"TableName": table}
    while True:
        page = ddb.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_a_new_table_is_created_by_one_import_with_its_index_and_verified(local_stack, source_db):
    db = source_db(35)

    desc, history = run(local_stack, contract(db), "imp-happy")

    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    states = entered(history)
    assert "StartImports" in states and "ImportsDone" in states
    assert states[-3:] == ["Verify", "Verified", "Succeeded"]
    # No page went through the load stage: the import brought every item in. (The load
    # queue's one message is the s3:TestEvent S3 sends when notifications are configured.)
    assert local_stack.stats.consumed["LoadQueue"] == 1
    output = json.loads(desc["output"])
    t = output["verify"]["tables"]["items"]
    assert (t["source_rows"], t["extracted"], t["loaded"], t["pages"]) == (35, 35, 35, 4)
    assert t["sampled_items"] >= 3  # items read back and compared with their source rows
    imp = manifest(local_stack).imports("imp-happy")[TABLE]
    assert (imp["status"], imp["expected"], imp["imported"], imp["errors"]) == (
        "COMPLETED",
        35,
        35,
        0,
    )
    assert imp["prefix"] == f"runs/imp-happy/import/{TABLE}/"
    # One staged object a page, none of them seen by the load queue's notifications.
    s3 = aws.client("s3")
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(
            Bucket=local_stack.environment["SLUICE_BUCKET"], Prefix=imp["prefix"]
        )["Contents"]
    ]
    assert sorted(keys) == [f"{imp['prefix']}items-p{p:06d}.import.json.gz" for p in range(1, 5)]
    # The table has the contract's key schema, on-demand billing and the index.
    table = aws.client("dynamodb").describe_table(TableName=TABLE)["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["PK", "SK"]
    (gsi,) = table["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "ByName"
    assert gsi["KeySchema"] == [{"AttributeName": "GSI1PK", "KeyType": "HASH"}]
    items = {i["PK"]["S"]: i for i in scan(TABLE)}
    assert len(items) == 35
    assert items["ITEM#7"]["price"] == {"N": "7.50"}
    assert items["ITEM#7"]["data"] == {"B": bytes([7]) * 3}
    assert items["ITEM#7"]["GSI1PK"] == {"S": "NAME#item 7"}


def test_an_empty_source_still_gets_its_table_created_by_an_import(local_stack, source_db):
    db = source_db(0)

    desc, history = run(local_stack, contract(db), "imp-empty")

    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    assert "SendPages" not in entered(history) and "StartImports" in entered(history)
    t = json.loads(desc["output"])["verify"]["tables"]["items"]
    assert (t["source_rows"], t["pages"], t["loaded"], t["ok"]) == (0, 0, 0, True)
    imp = manifest(local_stack).imports("imp-empty")[TABLE]
    assert (imp["status"], imp["expected"], imp["imported"]) == ("COMPLETED", 0, 0)
    assert aws.client("dynamodb").describe_table(TableName=TABLE)["Table"]["ItemCount"] == 0


def test_keys_shared_across_pages_are_refused_before_any_import_starts(local_stack, source_db):
    # Two pages of 10 rows each, whose rows map to the same 10 keys (ITEM#0 .. ITEM#9).
    db = source_db(20, groups=10)

    desc, history = run(local_stack, contract(db, pk="ITEM#{grp}"), "imp-dups")

    assert desc["status"] == "FAILED"
    assert desc["error"] == "DuplicateKeys"
    cause = desc["cause"]
    assert f"DynamoDB table {TABLE}: 10 item keys are each made by more than one row" in cause
    # The rows are named: ITEM#3 comes from items 3 and 13.
    assert "key PK=ITEM#3, SK=ITEM: items(3), items(13)" in cause
    assert entered(history)[-2:] == ["ImportsDone", "ImportNotDone"]
    # Nothing was created, and the run is failed in the manifest with the same reason.
    assert TABLE not in aws.client("dynamodb").list_tables()["TableNames"]
    imp = manifest(local_stack).imports("imp-dups")[TABLE]
    assert imp["status"] == "REFUSED" and "items(13)" in imp["failure"]
    run_item = manifest(local_stack).run("imp-dups")
    assert run_item["status"] == "failed" and run_item["verdict"].startswith("DuplicateKeys: ")


def test_a_failed_import_fails_the_run_with_its_error_and_prefix_and_can_be_retried(
    local_stack, source_db, monkeypatch
):
    db = source_db(25)
    bucket = local_stack.environment["SLUICE_BUCKET"]
    prefix = staging.import_prefix("imp-bad", TABLE)
    bad_key = f"{prefix}zz-bad.import.json.gz"
    real_start = ddb_import.start

    def start_with_a_bad_item(client, table, bucket_, prefix_, token):
        # An item without its sort key, as a broken transform might stage: the import fails it.
        bad = json.dumps({"Item": {"PK": {"S": "ITEM#bad"}}}).encode() + b"\n"
        aws.client("s3").put_object(Bucket=bucket, Key=bad_key, Body=gzip.compress(bad))
        return real_start(client, table, bucket_, prefix_, token)

    monkeypatch.setattr(ddb_import, "start", start_with_a_bad_item)

    desc, history = run(local_stack, contract(db), "imp-bad")

    assert desc["status"] == "FAILED"
    assert desc["error"] == "ImportFailed"
    cause = desc["cause"]
    assert f"DynamoDB import of table {TABLE} from s3://{bucket}/{prefix} ended FAILED" in cause
    assert "Missing the key SK" in cause  # the import's own error
    assert "imported 25 of 25 items, 1 errors" in cause
    assert "no page is extracted again" in cause
    assert entered(history)[-2:] == ["ImportsDone", "ImportNotDone"]
    m = manifest(local_stack)
    assert m.imports("imp-bad")[TABLE]["status"] == "FAILED"
    assert m.run("imp-bad")["status"] == "failed"

    # `sluice resume` for the same run: the cause fixed and the table the failed import left
    # deleted, a resume execution waits for the (done) pages, imports again from the staged
    # items, and verifies; nothing is extracted again.
    monkeypatch.setattr(ddb_import, "start", real_start)
    aws.client("s3").delete_object(Bucket=bucket, Key=bad_key)
    aws.client("dynamodb").delete_table(TableName=TABLE)
    extracts = local_stack.stats.invocations["ExtractFunction"]
    arn = local_stack.start_execution(
        {"resume": True, "run_id": "imp-bad", "poll_seconds": 1}, name="imp-bad-resume-1"
    )
    desc = local_stack.wait(arn, timeout=120)
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    states = entered(local_stack.history(arn))
    assert states[:3] == ["StartOrResume", "Resume", "Progress"]
    assert "Plan" not in states and "SendPages" not in states
    imp = m.imports("imp-bad")[TABLE]
    assert (imp["status"], imp["imported"], imp["attempt"]) == ("COMPLETED", 25, 2)
    assert imp["client_token"] == ddb_import.client_token("imp-bad", TABLE, 2)
    assert local_stack.stats.invocations["ExtractFunction"] == extracts
    run_item = m.run("imp-bad")
    assert (run_item["status"], int(run_item["resumes"])) == ("succeeded", 1)
    assert run_item["verdict"].startswith("VERIFIED")


def test_an_existing_table_is_refused_by_the_plan_before_any_page_moves(local_stack, source_db):
    db = source_db(5)
    aws.client("dynamodb").create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )

    desc, history = run(local_stack, contract(db), "imp-exists")

    assert desc["status"] == "FAILED"
    assert f"DynamoDB table {TABLE} exists" in desc["cause"]
    assert '"load": "import" creates its table' in json.loads(desc["cause"])["errorMessage"]
    assert entered(history) == ["StartOrResume", "Plan"]


def test_plan_estimate_prices_each_table_of_a_contract_from_the_live_source(
    demo_source, mysql_env, connect, tmp_path, capsys
):
    from sluice import cli
    from sluice.demo import dynamodb_contract

    doc = dynamodb_contract("import")
    doc["source"]["database"] = demo_source
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(doc))

    assert cli.main(["plan", "--estimate", "--contract", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {t["name"]: t for t in report["tables"]}
    assert set(rows) == {t["source"] for t in doc["tables"]}
    with connect(demo_source).cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM order_totals")
        assert rows["order_totals"]["rows"] == cur.fetchone()[0]  # a view: counted
    for name, t in rows.items():
        assert t["rows"] > 0 and t["item_bytes"] > 0, name
        assert t["write"]["cost_usd"] > t["import"]["cost_usd"] > 0, name
        assert (t["target_table"], t["load"], t["gsis"]) == ("shop", "import", 1), name
    (total,) = report["targets"]
    assert total["rows"] == sum(t["rows"] for t in rows.values())
    assert total["write"]["cost_usd"] == pytest.approx(
        sum(t["write"]["cost_usd"] for t in rows.values())
    )
    assert total["cheaper"] == "import"

    assert cli.main(["plan", "--estimate", "--contract", str(path)]) == 0
    out = capsys.readouterr().out
    assert "shop (all)" in out
    assert "shop: import is cheaper by $" in out and "the contract says 'import'" in out
