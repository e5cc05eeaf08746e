"""The state machine's behaviour in moto's interpreter, on the real definition and handlers.

Each test runs statemachine/migration.asl.json through the local stack (template.yaml's
wiring in moto, the real handlers in-process, a real MariaDB source) and reads the outcome
from the execution, its history and the manifest.

The bulk (Glue) branch runs its job on local PySpark
(test_a_table_over_the_bulk_threshold_runs_as_a_glue_job_without_page_messages).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import boto3
import pytest
from sluice import aws, operate, stages
from sluice.errors import PageError

pytestmark = [pytest.mark.mysql, pytest.mark.slow]

POISON_PAGE = 2


@pytest.fixture
def source_db(new_database, connect) -> Callable[[int], str]:
    """source_db(rows) -> a new database with table `items` of `rows` rows (ids 1..rows)."""

    def make(rows: int) -> str:
        db = new_database("sm")
        with connect(db).cursor() as cur:
            cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL)")
            cur.executemany(
                "INSERT INTO items VALUES (%s, %s)", [(i, f"item {i}") for i in range(1, rows + 1)]
            )
        return db

    return make


def contract(database: str, page_size: int = 10) -> dict:
    return {
        "version": 1,
        "source": {"database": database},
        "target": {
            "kind": "dynamodb",
            "tables": {"sm_items": {"partition_key": "PK", "sort_key": "SK"}},
        },
        "defaults": {"page_size": page_size},
        "tables": [
            {
                "source": "items",
                "key": ["id"],
                "target": {"table": "sm_items", "partition_key": "ITEM#{id}", "sort_key": "ITEM"},
            }
        ],
    }


def run(st, doc: dict, run_id: str, timeout: float = 120) -> tuple[dict, list[dict]]:
    """Start one execution named after the run and wait for it: (description, history)."""
    arn = st.start_execution({"contract": doc, "run_id": run_id, "poll_seconds": 1}, name=run_id)
    desc = st.wait(arn, timeout=timeout)
    return desc, st.history(arn)


def entered(history: list[dict]) -> list[str]:
    """The names of the states the execution entered, in order."""
    return [
        e[k]["name"]
        for e in history
        for k in ("stateEnteredEventDetails",)
        if k in e and e["type"].endswith("StateEntered")
    ]


def local_stack_outputs(st) -> operate.Stack:
    """The local stack as `sluice status` sees a deployed one (its outputs)."""
    env = st.environment
    return operate.Stack(
        name=st.name,
        state_machine_arn=st.state_machine_arn,
        bucket=env["SLUICE_BUCKET"],
        manifest_table=env["SLUICE_MANIFEST_TABLE"],
        dlq_urls={s: env[f"SLUICE_{s.upper()}_DLQ_URL"] for s in operate.STAGES},
    )


def test_a_run_of_several_pages_succeeds_with_every_row_loaded(local_stack, source_db):
    db = source_db(35)

    desc, history = run(local_stack, contract(db), "sm-happy")

    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    output = json.loads(desc["output"])
    assert output["verify"]["ok"] is True
    t = output["verify"]["tables"]["items"]
    assert (t["source_rows"], t["extracted"], t["loaded"], t["pages"]) == (35, 35, 35, 4)
    states = entered(history)
    assert states[:4] == ["StartOrResume", "Plan", "HasPages", "SendPages"]
    assert states[-3:] == ["Verify", "Verified", "Succeeded"]
    assert {"MapRunStarted", "MapRunSucceeded"} <= {e["type"] for e in history}
    items = aws.client("dynamodb").scan(TableName="sm_items", Select="COUNT")["Count"]
    assert items == 35


def test_a_page_that_always_fails_ends_the_run_failed_with_the_page_listed(
    local_stack, source_db, monkeypatch
):
    db = source_db(35)
    real_extract = stages.extract_page

    def extract_page(ctx, message):
        if message["page"] == POISON_PAGE:
            raise PageError(f"items#{POISON_PAGE}: poison page (injected by the test)")
        return real_extract(ctx, message)

    monkeypatch.setattr(stages, "extract_page", extract_page)

    desc, history = run(local_stack, contract(db), "sm-poison")

    # Never "succeeded" while a page is missing.
    assert desc["status"] == "FAILED"
    assert desc["error"] == "RunNotVerified"
    report = json.loads(desc["cause"])  # the notification carries this report
    assert report["ok"] is False
    t = report["tables"]["items"]
    assert (t["pages"], t["ok"]) == (4, False)
    assert "1 of 4 pages not loaded" in t["problems"][0]
    assert t["loaded"] == 35 - 10  # every other page arrived
    assert entered(history)[-2:] == ["Verified", "NotVerified"]
    # The manifest lists the page: failed at extract once its receives were spent.
    manifest = stages._manifest(local_stack.environment["SLUICE_MANIFEST_TABLE"])
    (failed,) = manifest.progress("sm-poison")["items"].failed_pages
    assert (failed["page"], failed["status"], failed["stage"]) == (POISON_PAGE, "failed", "extract")
    assert failed["attempts"] == int(local_stack.environment["SLUICE_MAX_RECEIVE_COUNT"])
    assert "poison page" in failed["error"]
    # Its message goes on to the extract dead-letter queue (after its last receive).
    stack = local_stack_outputs(local_stack)
    sqs = aws.client("sqs")
    deadline = time.monotonic() + 15
    while operate.dlq_depths(sqs, stack.dlq_urls)["extract"] < 1:
        assert time.monotonic() < deadline, "the poison page never reached the extract DLQ"
        time.sleep(0.2)
    # `sluice status` shows the same, from the manifest and the queues.
    status = operate.run_status(
        stack,
        "sm-poison",
        dynamodb=boto3.resource("dynamodb", region_name=aws.region()),
        sqs=sqs,
        stepfunctions=aws.client("stepfunctions"),
    )
    text = operate.render_status(status)
    assert "Run sm-poison: FAILED, 3/4 pages loaded" in text
    assert f"page {POISON_PAGE}: FAILED at extract after 3 attempts" in text
    assert status.dlq_depths == {"extract": 1, "transform": 0, "load": 0}


def test_an_empty_table_succeeds_without_fanning_out_or_waiting(local_stack, source_db):
    db = source_db(0)

    desc, history = run(local_stack, contract(db), "sm-empty")

    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    output = json.loads(desc["output"])
    assert output["page_count"] == 0
    t = output["verify"]["tables"]["items"]
    assert (t["source_rows"], t["pages"], t["loaded"], t["ok"]) == (0, 0, 0, True)
    states = entered(history)
    assert "SendPages" not in states and "WaitForPages" not in states
    assert states == [
        "StartOrResume",
        "Plan",
        "HasPages",
        "HasBulkTables",
        "Progress",
        "AllLoaded",
        "Verify",
        "Verified",
        "Succeeded",
    ]
    assert local_stack.stats.invocations["ProgressFunction"] == 1


def test_a_transient_progress_error_is_retried_and_the_run_succeeds(
    local_stack, source_db, monkeypatch
):
    db = source_db(12)
    real_progress = stages.progress
    calls = []

    def progress(ctx, event, **kwargs):
        calls.append(event["run_id"])
        if len(calls) == 1:
            raise ConnectionError("DynamoDB endpoint reset (injected once by the test)")
        return real_progress(ctx, event, **kwargs)

    monkeypatch.setattr(stages, "progress", progress)

    desc, history = run(local_stack, contract(db), "sm-retry")

    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    failures = [e for e in history if e["type"] in ("TaskFailed", "LambdaFunctionFailed")]
    assert len(failures) == 1
    detail = failures[0].get("taskFailedEventDetails") or failures[0].get(
        "lambdaFunctionFailedEventDetails"
    )
    assert "injected once" in detail["cause"]
    assert len(calls) >= 2
    assert json.loads(desc["output"])["verify"]["tables"]["items"]["loaded"] == 12


def test_a_table_over_the_bulk_threshold_runs_as_a_glue_job_without_page_messages(
    local_stack, source_db, connect
):
    """The bulk branch: the plan lists the table, the BulkTables map runs the Glue job
    (glue:startJobRun.sync, executed on local PySpark), and Progress sees its pages loaded."""
    from integration.bulk_helpers import ensure_spark

    ensure_spark()
    db = source_db(25)
    doc = contract(db)
    doc["defaults"]["bulk_threshold_rows"] = 1
    with connect(db).cursor() as cur:  # the estimate the threshold is compared with
        cur.execute("ANALYZE TABLE items")
        cur.fetchall()

    desc, history = run(local_stack, doc, "sm-bulk", timeout=300)

    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    t = json.loads(desc["output"])["verify"]["tables"]["items"]
    assert (t["source_rows"], t["pages"], t["loaded"], t["ok"]) == (25, 3, 25, True)
    states = entered(history)
    assert states[1:6] == ["Plan", "HasPages", "HasBulkTables", "BulkTables", "BulkJob"]
    assert "SendPages" not in states and "BulkJobFailed" not in states
    glue = [
        e["taskScheduledEventDetails"]
        for e in history
        if e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resourceType"] == "glue"
    ]
    assert [g["resource"] for g in glue] == ["startJobRun.sync"]
    assert json.loads(glue[0]["parameters"])["Arguments"]["--table"] == "items"
    assert "ExtractFunction" not in local_stack.stats.invocations
