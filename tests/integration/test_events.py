"""The sample events in events/, each given to its handler as `sam local invoke -e` would.

The event files name the demo's fixed databases (`sluice_demo` -> `sluice_demo_copy`, what
`make demo` builds), so they work with `sam local invoke` against a real demo database.
Tests never touch those: each one builds the demo data under a unique name and, before
invoking, replaces only the database names in the event's contract (`with_databases`).
Everything else (run id, page message, object keys) is used exactly as the files have it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import boto3
import pyarrow as pa
import pytest
from boto3.dynamodb.conditions import Key
from sluice import aws
from sluice.demo import dynamodb_contract, mysql_contract
from sluice.local.template import Template

# What each sample event is for: a function's logical id in template.yaml, or the state machine.
EVENT_TARGETS = {
    "plan.json": "PlanFunction",
    "extract.json": "ExtractFunction",
    "transform.json": "TransformFunction",
    "load.json": "LoadFunction",
    "progress.json": "ProgressFunction",
    "verify.json": "VerifyFunction",
    "import.json": "ImportFunction",
    "start-migration-dynamodb.json": "MigrationStateMachine",
    "start-migration-mysql.json": "MigrationStateMachine",
}
RUN_ID = "sample-run"
ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def with_databases(event: dict, source_db: str, target_db: str | None = None) -> dict:
    """A copy of `event` whose contract reads `source_db` and, for a MySQL target, writes
    `target_db`: the only change tests make to a sample event."""
    out = copy.deepcopy(event)
    contract = out["contract"]
    contract["source"]["database"] = source_db
    if contract["target"]["kind"] == "mysql":
        contract["target"]["database"] = target_db
    return out


def s3_keys(sqs_event: dict) -> list[str]:
    """Object keys named by the S3 notifications inside an SQS event (read without sluice)."""
    return [
        r["s3"]["object"]["key"]
        for record in sqs_event["Records"]
        for r in json.loads(record["body"])["Records"]
    ]


def staged(st, key: str) -> bytes:
    return (
        aws.client("s3").get_object(Bucket=st.environment["SLUICE_BUCKET"], Key=key)["Body"].read()
    )


def staged_rows(st, key: str) -> int:
    """Rows of a staged Arrow IPC page, read with pyarrow alone."""
    return pa.ipc.open_file(pa.BufferReader(staged(st, key))).read_all().num_rows


def count_rows(conn, database: str, table: str) -> int:
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM `{database}`.`{table}`")
        return cur.fetchone()[0]


def test_every_sample_event_belongs_to_a_function_and_every_function_has_one():
    files = {p.name for p in EVENTS.glob("*.json")}
    assert files == set(EVENT_TARGETS)
    functions = set(Template.load(ROOT / "template.yaml").functions)
    assert functions <= set(EVENT_TARGETS.values())


def test_sample_events_share_one_run_id_and_chain_by_object_key():
    assert load_event("plan.json")["run_id"] == RUN_ID
    page = json.loads(load_event("extract.json")["Records"][0]["body"])
    assert page["run_id"] == RUN_ID
    prefix = f"runs/{RUN_ID}/"
    assert s3_keys(load_event("transform.json")) == [
        f"{prefix}extracted/{page['table']}/p{page['page']:06d}.extracted.arrow"
    ]
    assert s3_keys(load_event("load.json")) == [
        f"{prefix}transformed/{page['table']}/p{page['page']:06d}.transformed.arrow"
    ]
    assert load_event("progress.json")["run_id"] == RUN_ID
    assert load_event("verify.json") == {"run_id": RUN_ID}
    assert load_event("import.json")["run_id"] == RUN_ID


@pytest.mark.parametrize("name", ["extract.json", "transform.json", "load.json"])
def test_sqs_sample_events_look_like_what_lambda_receives(name):
    for record in load_event(name)["Records"]:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"].startswith("arn:aws:sqs:")
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        assert int(record["attributes"]["ApproximateReceiveCount"]) >= 1
        assert {"messageId", "receiptHandle", "messageAttributes", "awsRegion"} <= set(record)


def test_start_migration_inputs_are_the_demo_contracts():
    assert load_event("start-migration-dynamodb.json") == {"contract": dynamodb_contract()}
    assert load_event("start-migration-mysql.json") == {"contract": mysql_contract()}


def test_sample_events_run_plan_extract_transform_load_progress_verify(
    unwired_stack, demo_source, new_database, connect, table_hex_rows
):
    st = unwired_stack
    target_db = new_database("copy")
    conn = connect()
    source_rows = count_rows(conn, demo_source, "users")

    plan = st.invoke(
        "PlanFunction", with_databases(load_event("plan.json"), demo_source, target_db)
    )
    assert plan["run_id"] == RUN_ID
    assert plan["page_count"] == 1
    assert [(t["table"], t["pages"], t["path"]) for t in plan["tables"]] == [("users", 1, "lambda")]
    # The sample extract message is exactly what the plan sends to the extract queue.
    batches = json.loads(staged(st, plan["batches_key"]))
    sent = [json.loads(e["MessageBody"]) for b in batches for e in b["Entries"]]
    extract_event = load_event("extract.json")
    assert sent == [json.loads(r["body"]) for r in extract_event["Records"]]

    assert st.invoke("ExtractFunction", extract_event) == {"batchItemFailures": []}
    transform_event = load_event("transform.json")
    (extracted_key,) = s3_keys(transform_event)
    assert staged_rows(st, extracted_key) == source_rows

    assert st.invoke("TransformFunction", transform_event) == {"batchItemFailures": []}
    load_sqs_event = load_event("load.json")
    (transformed_key,) = s3_keys(load_sqs_event)
    assert staged_rows(st, transformed_key) == source_rows

    assert st.invoke("LoadFunction", load_sqs_event) == {"batchItemFailures": []}
    assert table_hex_rows(target_db, "users", ["id"]) == table_hex_rows(
        demo_source, "users", ["id"]
    )

    progress = st.invoke("ProgressFunction", load_event("progress.json"))
    assert progress["done"] is True
    assert progress["failed"] is False
    assert (progress["pages"], progress["pages_loaded"], progress["failed_pages"]) == (1, 1, 0)

    # A MySQL target has no table an import creates: the import step has nothing to do.
    imports = st.invoke("ImportFunction", load_event("import.json"))
    assert (imports["count"], imports["done"], imports["failed"]) == (0, True, False)

    report = st.invoke("VerifyFunction", load_event("verify.json"))
    assert report["ok"] is True, report["verdict"]
    users = report["tables"]["users"]
    assert (users["source_rows"], users["extracted"], users["loaded"], users["target_rows"]) == (
        source_rows,
        source_rows,
        source_rows,
        source_rows,
    )


def test_unknown_table_fails_only_its_own_record_of_an_extract_batch(
    unwired_stack, demo_source, new_database
):
    st = unwired_stack
    plan = st.invoke(
        "PlanFunction", with_databases(load_event("plan.json"), demo_source, new_database("copy"))
    )
    good = load_event("extract.json")["Records"][0]
    bad = copy.deepcopy(good)
    bad["messageId"] = "bad-page-message"
    bad["body"] = json.dumps({**json.loads(good["body"]), "table": "no_such_table"})

    result = st.invoke("ExtractFunction", {"Records": [bad, good]})

    assert result == {"batchItemFailures": [{"itemIdentifier": "bad-page-message"}]}
    (extracted_key,) = s3_keys(load_event("transform.json"))
    assert staged(st, extracted_key)
    # The failure of a page the plan never made leaves the run's manifest as planned.
    manifest = boto3.resource("dynamodb", region_name=aws.region()).Table(
        st.environment["SLUICE_MANIFEST_TABLE"]
    )
    pages = manifest.query(KeyConditionExpression=Key("pk").eq(f"RUN#{RUN_ID}"))["Items"]
    assert sorted(i["sk"] for i in pages if i["sk"].startswith("PAGE#")) == ["PAGE#users#000001"]
    # As the state machine does, pass the plan's start time: the sample's is long past, and
    # a run that old and not yet loaded counts as timed out.
    progress = st.invoke(
        "ProgressFunction", {**load_event("progress.json"), "started_at": plan["started_at"]}
    )
    assert (progress["pages"], progress["pages_loaded"], progress["failed_pages"]) == (1, 0, 0)
    assert progress["failed"] is False


@pytest.mark.parametrize("name", ["start-migration-mysql.json", "start-migration-dynamodb.json"])
def test_start_migration_input_runs_to_a_verified_success(
    name, local_stack, demo_source, new_database, connect
):
    st = local_stack
    event = with_databases(load_event(name), demo_source, new_database("copy"))

    desc = st.wait(st.start_execution(event), timeout=120)

    output = json.loads(desc.get("output") or "{}")
    assert desc["status"] == "SUCCEEDED", desc.get("cause") or output
    assert output["verify"]["ok"] is True
    conn = connect()
    tables = event["contract"]["tables"]
    source_rows = sum(count_rows(conn, demo_source, t["source"]) for t in tables)
    assert sum(t["loaded"] for t in output["verify"]["tables"].values()) == source_rows
    if event["contract"]["target"]["kind"] == "dynamodb":
        (shop,) = event["contract"]["target"]["tables"]
        items = aws.client("dynamodb").scan(TableName=shop, Select="COUNT")["Count"]
        assert items == source_rows
    else:
        target = event["contract"]["target"]["database"]
        assert sum(count_rows(conn, target, t["target"]["table"]) for t in tables) == source_rows
