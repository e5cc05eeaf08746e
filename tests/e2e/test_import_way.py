"""The import way makes the same table as the write way, item for item.

The demo's single-table design is migrated twice in one local stack, once by BatchWriteItem
into one table and once by Import from S3 into another; all of Sakila is imported and
compared with the session's write-way run at the moto server (`dynamodb_run`).
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
from sluice import aws
from sluice.demo import dynamodb_contract
from sluice.demo_data import create_demo_database
from sluice.local.runtime import LocalStack, handler_output_to

from .conftest import database_env

pytestmark = [pytest.mark.mysql, pytest.mark.slow]


def canonical(item: dict) -> str:
    """An item as one comparable text: binary as base64, sets sorted."""

    def value(v: dict):
        ((kind, x),) = v.items()
        if kind == "B":
            return {"B": base64.b64encode(bytes(x)).decode()}
        if kind in ("SS", "NS"):
            return {kind: sorted(x)}
        if kind == "BS":
            return {kind: sorted(base64.b64encode(bytes(b)).decode() for b in x)}
        if kind == "M":
            return {"M": {k: value(y) for k, y in x.items()}}
        if kind == "L":
            return {"L": [value(y) for y in x]}
        return v

    return json.dumps({k: value(v) for k, v in item.items()}, sort_keys=True, ensure_ascii=False)


def scan(client, table: str) -> list[str]:
    items, kwargs = [], {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        items.extend(canonical(i) for i in page["Items"])
        if "LastEvaluatedKey" not in page:
            return sorted(items)
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def run_in_local_stack(docs: list[dict], work: Path) -> tuple[list[dict], dict[str, list[str]]]:
    """Run each contract through one local stack; (executions, their DynamoDB tables' items),
    read before the stack and its in-process DynamoDB go away."""
    runs = []
    with handler_output_to(work / "lambda.log"), LocalStack() as st:
        for doc in docs:
            run_id = f"e2e-imp-{uuid.uuid4().hex[:8]}"
            arn = st.start_execution(
                {"contract": doc, "run_id": run_id, "poll_seconds": 1}, name=run_id
            )
            runs.append(st.wait(arn, timeout=600))
        ddb = aws.client("dynamodb")
        tables = {t: scan(ddb, t) for doc in docs for t in doc["target"]["tables"]}
    return runs, tables


def with_table(doc: dict, old: str, new: str) -> dict:
    doc = json.loads(json.dumps(doc))
    doc["target"]["tables"][new] = doc["target"]["tables"].pop(old)
    for entry in doc["tables"]:
        entry["target"]["table"] = new
    return doc


def test_the_demo_design_imported_equals_the_demo_design_written(
    connect, new_database, mysql_url, tmp_path
):
    source = new_database("impdemo")
    create_demo_database(connect(), source, scale=0.01)
    docs = []
    for load, table in (("write", "shop_written"), ("import", "shop_imported")):
        doc = with_table(dynamodb_contract(load), "shop", table)
        doc["source"]["database"] = source
        doc["defaults"]["page_size"] = 150  # several pages a table, so one import reads many
        docs.append(doc)

    with database_env(mysql_url):
        (written, imported), tables = run_in_local_stack(docs, tmp_path)

    for desc in (written, imported):
        assert desc["status"] == "SUCCEEDED", desc.get("cause")
    verify = json.loads(imported["output"])["verify"]
    assert all(t["sampled_items"] > 0 for t in verify["tables"].values())
    assert len(tables["shop_written"]) > 1000
    assert tables["shop_imported"] == tables["shop_written"]


def test_all_of_sakila_imported_equals_sakila_written(
    dynamodb_run, dynamodb_reader, mysql_url, tmp_path
):
    written = dynamodb_run.summary
    assert written["status"] == "SUCCEEDED", written["verdict"]
    doc = json.loads(json.dumps(dynamodb_run.contract))
    (table,) = doc["target"]["tables"]
    doc["target"]["tables"][table]["load"] = "import"
    doc.pop("notes", None)

    with database_env(mysql_url):
        (desc,), tables = run_in_local_stack([doc], tmp_path)

    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    output = json.loads(desc["output"])
    assert output["imports"]["tables"][table]["status"] == "COMPLETED"
    want = scan(dynamodb_reader, table)
    assert len(want) == sum(t["loaded"] for t in written["tables"].values()) > 40_000
    assert tables[table] == want
