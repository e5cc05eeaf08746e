"""The bulk path into DynamoDB over HTTP (a moto server, as a real endpoint): the Glue job on
local PySpark writes the same items as the Lambda path, composite-key table included."""

from __future__ import annotations

import os

import pytest
from integration.bulk_helpers import (
    ROWS,
    assert_paths,
    contract,
    create_source,
    ensure_spark,
    run,
)

from .conftest import database_env

pytestmark = [pytest.mark.mysql, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def spark():
    ensure_spark()
    from sluice.bulk_spark import local_session

    return local_session()


def scan(client, table: str) -> dict[tuple[str, str], dict]:
    items, kwargs = {}, {"TableName": table}
    while True:
        resp = client.scan(**kwargs)
        for it in resp["Items"]:
            items[(it["PK"]["S"], it["SK"]["S"])] = it
        if "LastEvaluatedKey" not in resp:
            return items
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def test_bulk_and_lambda_paths_write_identical_dynamodb_items(
    connect, new_database, mysql_url, moto_endpoint, dynamodb_reader, tmp_path
):
    source = new_database("bulk_ddb")
    create_source(connect(), source)
    summaries = {}
    for path in ("lambda", "bulk"):
        doc = contract(source, {"kind": "dynamodb", "table": f"bulk-by-{path}"}, path=path)
        with database_env(mysql_url):
            os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = moto_endpoint
            summaries[path] = run(doc, tmp_path, path)
    assert_paths(summaries["lambda"], "lambda")
    assert_paths(summaries["bulk"], "bulk")
    by_lambda = scan(dynamodb_reader, "bulk-by-lambda")
    by_bulk = scan(dynamodb_reader, "bulk-by-bulk")
    assert len(by_lambda) == sum(ROWS.values())
    assert by_bulk == by_lambda
    # The composite-key table: one item per (order_id, code), the awkward codes included.
    lines = {k for k in by_bulk if k[0].startswith("ORDER#")}
    assert len(lines) == ROWS["order_lines"]
    assert ("ORDER#1", "LINE#a'b") in lines and ("ORDER#1", "LINE#a\\b") in lines
