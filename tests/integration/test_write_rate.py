"""A DynamoDB write_rate on the local stack: the plan resolves the cap and splits it between
the paths, a page loaded under it records the write units it sent and the time it waited (in
the manifest and as the load function's metrics), and status shows the effective rate.

The demo database is real MariaDB; S3, the manifest and DynamoDB are the local stack's moto.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import pytest
from sluice import aws, stages
from sluice.bulk import BulkJob
from sluice.bulk_spark import job_write_rate
from sluice.contract import parse
from sluice.demo import dynamodb_contract
from sluice.errors import SluiceError
from sluice.operate import RunStatus, render_status
from sluice.ratelimit import rates_key, write_units
from sluice.staging import EXTRACTED, TRANSFORMED, PageRef

pytestmark = pytest.mark.mysql

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _contract(source_db: str, write_rate: dict, *, bulk: tuple[str, ...] = ()) -> dict:
    doc = dynamodb_contract()
    doc["source"]["database"] = source_db
    doc["target"]["tables"]["shop"]["write_rate"] = write_rate
    for t in doc["tables"]:
        if t["source"] in bulk:
            t["path"] = "bulk"
    return doc


def _plan(doc: dict) -> tuple[str, list[dict]]:
    ctx = stages.context()
    out = stages.plan_run(ctx, {"contract": doc})
    batches = json.loads(ctx.get(out["batches_key"]))
    return out["run_id"], [json.loads(e["MessageBody"]) for b in batches for e in b["Entries"]]


def _load_event(key: str) -> dict:
    """The sample load event (events/load.json), naming `key` instead of its own object."""
    event = json.loads((EVENTS / "load.json").read_text())
    record = event["Records"][0]
    body = json.loads(record["body"])
    body["Records"][0]["s3"]["object"]["key"] = key
    record["body"] = json.dumps(body)
    return event


def _emitted_metrics(text: str) -> dict[str, list[float]]:
    """The values of each metric in the Embedded Metric Format lines Powertools printed."""
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        doc = json.loads(line)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for m in directive["Metrics"]:
                value = doc[m["Name"]]
                out.setdefault(m["Name"], []).extend(value if isinstance(value, list) else [value])
    return out


def test_a_page_loaded_under_a_write_rate_records_its_units_and_its_wait(
    unwired_stack, demo_source, capsys
):
    st = unwired_stack
    # The local stack's load workers divide the cap by exactly as many as it runs.
    assert st.environment["SLUICE_LOAD_CONCURRENCY"] == "2"
    assert [t.name for t in st._threads].count("sqs-LoadFunction") == 2
    run_id, messages = _plan(_contract(demo_source, {"units_per_second": 400}))
    ctx = stages.context()
    assert json.loads(ctx.get(rates_key(run_id))) == {
        "shop": {"units_per_second": 400.0, "lambda": 400.0, "bulk": {}}
    }
    message = next(m for m in messages if m["table"] == "users")
    ref = PageRef.from_dict(message)
    stages.extract_page(ctx, message)
    stages.transform_page(ctx, ref.key(EXTRACTED))
    key = ref.key(TRANSFORMED, "dynamodb")
    lines = gzip.decompress(ctx.get(key)).splitlines()
    units = sum(write_units(ln) for ln in lines)
    assert len(lines) > 25  # more than one request, and more than the bucket holds at first
    capsys.readouterr()

    assert st.invoke("LoadFunction", _load_event(key)) == {"batchItemFailures": []}

    metrics = _emitted_metrics(capsys.readouterr().out)
    page = ctx.manifest.page(ref)
    assert page["status"] == "loaded" and int(page["loaded"]) == len(lines)
    assert int(page["write_units"]) == units
    # Each worker's bucket starts empty: the first request already waited for its units.
    assert int(page["rate_wait_ms"]) > 0
    assert metrics["WriteUnits"] == [units]
    assert metrics["RateWaitSeconds"] == [pytest.approx(int(page["rate_wait_ms"]) / 1000)]
    written = aws.client("dynamodb").scan(TableName="shop", Select="COUNT")["Count"]
    assert written == len(lines)

    progress = ctx.manifest.progress(run_id)["users"]
    assert progress.write_units == units
    shown = render_status(RunStatus(run_id, None, {"users": progress}, {}, None))
    assert f"{units:,} write units" in shown


def test_a_share_of_provisioned_capacity_is_read_from_the_table_and_split_with_a_bulk_job(
    unwired_stack, demo_source
):
    aws.client("dynamodb").create_table(
        TableName="shop",
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 80},
    )
    doc = _contract(demo_source, {"share_of_provisioned": 0.5}, bulk=("orders",))

    run_id, _ = _plan(doc)

    ctx = stages.context()
    assert json.loads(ctx.get(rates_key(run_id))) == {
        "shop": {"units_per_second": 40.0, "lambda": 20.0, "bulk": {"orders": 20.0}}
    }
    job = BulkJob(
        run_id,
        "orders",
        f"runs/{run_id}/plan/bulk-orders.json",
        ctx.settings.bucket,
        ctx.settings.manifest_table,
    )
    contract = parse(doc)
    assert job_write_rate(job, contract, "shop") == 20.0
    # The stack's own cap on a bulk job (BulkWriteUnitsPerSecond) holds too, when smaller.
    assert job_write_rate(replace(job, write_units_per_second=8.0), contract, "shop") == 8.0
    assert job_write_rate(replace(job, write_units_per_second=50.0), contract, "shop") == 20.0


def test_a_share_of_an_on_demand_tables_capacity_is_refused_by_the_plan(unwired_stack, demo_source):
    # The local stack creates the missing table on demand: it has no provisioned capacity.
    with pytest.raises(SluiceError) as refused:
        _plan(_contract(demo_source, {"share_of_provisioned": 0.5}))
    message = str(refused.value)
    assert message.startswith("$.target.tables.shop.write_rate.share_of_provisioned: ")
    assert "on-demand" in message and "units_per_second" in message
