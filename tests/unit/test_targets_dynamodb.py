"""DynamoDB target under moto: table creation and check, prebuilt BatchWriteItem, retries."""

from __future__ import annotations

import base64
import json
import threading

import boto3
import pytest
from sluice.contract import DynamoTable
from sluice.errors import SluiceError
from sluice.targets import dynamodb as ddb

REGION = "us-east-1"


@pytest.fixture
def client(aws_mock):
    return ddb.make_client(None, REGION)


@pytest.fixture
def plain(aws_mock):
    """An ordinary boto3 client, to read back what Sluice wrote."""
    return boto3.client("dynamodb", region_name=REGION)


def line(i: int) -> bytes:
    item = {
        "PK": {"S": f"USER#{i}"},
        "SK": {"S": "PROFILE"},
        "n": {"N": str(10**19 + i)},  # 20 digits: more than a float or int64 holds
        "blob": {"B": base64.b64encode(bytes([0, i, 255]) + b"\n\x00").decode()},
        "name": {"S": f'caf\u00e9 \U0001f600 "{i}"\t\\'},
        "tags": {"SS": ["a", f"t{i}"]},
        "doc": {"M": {"price": {"N": "0.10"}, "xs": {"L": [{"NULL": True}, {"BOOL": False}]}}},
    }
    return json.dumps({"Item": item}, ensure_ascii=False).encode()


def expected(i: int) -> dict:
    """What a plain boto3 client reads back for line(i)."""
    return {
        "PK": {"S": f"USER#{i}"},
        "SK": {"S": "PROFILE"},
        "n": {"N": str(10**19 + i)},
        "blob": {"B": bytes([0, i, 255]) + b"\n\x00"},
        "name": {"S": f'caf\u00e9 \U0001f600 "{i}"\t\\'},
        "tags": {"SS": ["a", f"t{i}"]},
        "doc": {"M": {"price": {"N": "0.10"}, "xs": {"L": [{"NULL": True}, {"BOOL": False}]}}},
    }


def scan_all(plain, table: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for pg in plain.get_paginator("scan").paginate(TableName=table):
        for item in pg["Items"]:
            item["tags"]["SS"] = sorted(item["tags"]["SS"])
            out[item["PK"]["S"]] = item
    return out


def test_ensure_table_creates_then_reports_exists(client, plain):
    table = DynamoTable("shop", "PK", "SK")
    assert ddb.ensure_table(client, table) == "created"
    assert ddb.ensure_table(client, table) == "exists"
    desc = plain.describe_table(TableName="shop")["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in desc["KeySchema"]} == {
        "PK": "HASH",
        "SK": "RANGE",
    }
    assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_ensure_table_without_sort_key_creates_a_hash_only_table(client, plain):
    assert ddb.ensure_table(client, DynamoTable("audit", "id", None)) == "created"
    desc = plain.describe_table(TableName="audit")["Table"]
    assert desc["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]


@pytest.mark.parametrize(
    "declared",
    [
        DynamoTable("shop", "PK", None),
        DynamoTable("shop", "pk", "SK"),
        DynamoTable("shop", "PK", "GSI"),
    ],
)
def test_existing_table_with_another_key_schema_is_refused(client, declared):
    ddb.ensure_table(client, DynamoTable("shop", "PK", "SK"))
    with pytest.raises(SluiceError, match=r"DynamoDB table shop exists with key schema") as err:
        ddb.ensure_table(client, declared)
    assert "$.target.tables.shop" in str(err.value)


def test_write_items_writes_exactly_the_prebuilt_items(client, plain):
    ddb.ensure_table(client, DynamoTable("shop", "PK", "SK"))
    lines = [line(i) for i in range(60)]

    assert ddb.write_items(client, "shop", lines) == 60

    got = scan_all(plain, "shop")
    assert got == {f"USER#{i}": expected(i) for i in range(60)}


def test_write_items_of_nothing_sends_nothing(client):
    assert ddb.write_items(client, "no-such-table", []) == 0


def test_table_name_needing_json_escaping_is_sent_intact(client, plain):
    ddb.ensure_table(client, DynamoTable("shop.v2-x_y", "PK", "SK"))
    ddb.write_items(client, "shop.v2-x_y", [line(1)], threads=1)
    assert scan_all(plain, "shop.v2-x_y") == {"USER#1": expected(1)}


def test_unprocessed_items_are_retried_until_every_item_is_written(client, plain, monkeypatch):
    """The first response of each batch leaves its last 5 items unprocessed (not written)."""
    monkeypatch.setattr(ddb.time, "sleep", lambda s: None)
    ddb.ensure_table(client, DynamoTable("shop", "PK", "SK"))
    lock = threading.Lock()
    seen_batches: set[str] = set()
    calls = []
    per_thread = threading.local()

    def drop_some(request, **_):
        doc = json.loads(request.data)
        puts = doc["RequestItems"]["shop"]
        first_key = puts[0]["PutRequest"]["Item"]["PK"]["S"]
        with lock:
            calls.append(len(puts))
            if first_key in seen_batches or len(puts) < 10:
                return
            seen_batches.add(first_key)
        doc["RequestItems"]["shop"], dropped = puts[:-5], puts[-5:]
        body = json.dumps(doc).encode()
        request.data = body
        request.headers["Content-Length"] = str(len(body))
        per_thread.dropped = dropped

    def report_unprocessed(parsed, **_):
        dropped, per_thread.dropped = getattr(per_thread, "dropped", None), None
        if dropped:
            # as botocore hands it back: B decoded to bytes, SS as a list
            for put in dropped:
                item = put["PutRequest"]["Item"]
                item["blob"] = {"B": base64.b64decode(item["blob"]["B"])}
            parsed["UnprocessedItems"] = {"shop": dropped}

    # registered after make_client's own before-sign hook, so it sees the prebuilt body
    client.meta.events.register("before-sign.dynamodb.BatchWriteItem", drop_some)
    client.meta.events.register("after-call.dynamodb.BatchWriteItem", report_unprocessed)

    lines = [line(i) for i in range(60)]
    assert ddb.write_items(client, "shop", lines, threads=4) == 60

    assert sorted(calls) == sorted([25, 25, 10, 5, 5, 5])
    assert scan_all(plain, "shop") == {f"USER#{i}": expected(i) for i in range(60)}


def test_items_still_unprocessed_after_every_attempt_raise(client):
    ddb.ensure_table(client, DynamoTable("shop", "PK", "SK"))
    attempts = []

    def never(parsed, **_):
        attempts.append(1)
        item = {"PK": {"S": "USER#1"}, "SK": {"S": "PROFILE"}}
        parsed["UnprocessedItems"] = {"shop": [{"PutRequest": {"Item": item}}]}

    client.meta.events.register("after-call.dynamodb.BatchWriteItem", never)
    backoff = ddb.Backoff(sleep=lambda s: None)
    with pytest.raises(SluiceError, match=r"table shop: 1 items not written after 10 attempts"):
        ddb.write_items(client, "shop", [line(1)], threads=1, backoff=backoff)
    assert len(attempts) == backoff.attempts == 10


def _answer(code: str, status: int):
    """A before-call hook's short-circuit: botocore raises it as the service's error."""

    class Http:
        status_code = status

    return Http(), {
        "Error": {"Code": code, "Message": "slow down"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("RequestLimitExceeded", 400),
        ("InternalServerError", 500),
        ("ServiceUnavailable", 503),
    ],
)
def test_throttled_sdk_requests_are_retried_with_growing_waits_until_written(
    aws_mock, plain, code, status
):
    client = ddb.make_client(None, REGION, retries=False)
    ddb.ensure_table(client, DynamoTable("shop", "PK", "SK"))
    answers = [_answer(code, status)] * 3
    calls = []

    def throttle(**_):
        calls.append(1)
        return answers.pop(0) if answers else None  # None: on to the emulator

    client.meta.events.register("before-call.dynamodb.BatchWriteItem", throttle)
    sleeps: list[float] = []
    backoff = ddb.Backoff(sleep=sleeps.append, jitter=lambda: 1.0)
    lines = [line(i) for i in range(20)]

    written, rejected = ddb.write_page_items(client, "shop", lines, ["PK", "SK"], backoff=backoff)

    assert (written, len(rejected), len(calls)) == (20, 0, 4)
    assert sleeps == [0.1, 0.2, 0.4]
    assert scan_all(plain, "shop") == {f"USER#{i}": expected(i) for i in range(20)}


def test_sdk_throttling_that_never_ends_fails_the_page_naming_it(aws_mock):
    client = ddb.make_client(None, REGION, retries=False)
    ddb.ensure_table(client, DynamoTable("shop", "PK", "SK"))
    client.meta.events.register(
        "before-call.dynamodb.BatchWriteItem",
        lambda **_: _answer("ProvisionedThroughputExceededException", 400),
    )
    backoff = ddb.Backoff(sleep=lambda s: None)
    with pytest.raises(ddb.BatchNotWritten) as failed:
        ddb.write_page_items(client, "shop", [line(1)], ["PK"], backoff=backoff, page="users#3")
    assert str(failed.value).startswith("page users#3: DynamoDB table shop: 1 items not written")
    assert "ProvisionedThroughputExceededException" in str(failed.value)


def test_a_write_only_client_leaves_retries_to_sluice():
    assert ddb.make_client(None, REGION, retries=False).meta.config.retries == {
        "total_max_attempts": 1,
        "mode": "standard",
    }
