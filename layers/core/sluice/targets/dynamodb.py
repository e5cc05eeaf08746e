"""DynamoDB target: table creation for local runs, and BatchWriteItem of prebuilt items.

Items arrive from the transform as DynamoDB wire JSON lines and are sent as they are, never
parsed and serialised again. Two writers share the batching, retries and isolation of
refused items: HttpBatchWriter (targets/dynamodb_http.py: signs and posts the body itself,
the fast path for any endpoint reachable over HTTP) and SdkBatchWriter (a botocore client
whose body is swapped in just before signing: the in-process emulator's path).
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from botocore.config import Config
from botocore.exceptions import ClientError

from ..contract import DynamoTable
from ..errors import SluiceError
from ..staging import NO_REJECTS, Rejected

BATCH = 25
MAX_ATTEMPTS = 10
_body = threading.local()


def ensure_table(client, table: DynamoTable) -> str:
    """Create `table` on demand (local runs) or check its key schema; "created" or "exists"."""
    try:
        desc = client.describe_table(TableName=table.name)["Table"]
    except client.exceptions.ResourceNotFoundException:
        attrs = [{"AttributeName": table.partition_key, "AttributeType": "S"}]
        schema = [{"AttributeName": table.partition_key, "KeyType": "HASH"}]
        if table.sort_key:
            attrs.append({"AttributeName": table.sort_key, "AttributeType": "S"})
            schema.append({"AttributeName": table.sort_key, "KeyType": "RANGE"})
        client.create_table(
            TableName=table.name,
            AttributeDefinitions=attrs,
            KeySchema=schema,
            BillingMode="PAY_PER_REQUEST",
        )
        client.get_waiter("table_exists").wait(
            TableName=table.name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        return "created"
    have = {k["KeyType"]: k["AttributeName"] for k in desc["KeySchema"]}
    want = {"HASH": table.partition_key, **({"RANGE": table.sort_key} if table.sort_key else {})}
    if have != want:
        raise SluiceError(
            f"DynamoDB table {table.name} exists with key schema {have}, but the contract declares "
            f"{want}: fix $.target.tables.{table.name} or use another table"
        )
    return "exists"


def _put_prebuilt_body(request, **_kwargs):
    body = getattr(_body, "value", None)
    if body is not None:
        request.data = body
        request.headers["Content-Length"] = str(len(body))


def make_client(endpoint_url: str | None, region: str):
    """A client whose BatchWriteItem sends the prebuilt body (validation is pointless there)."""
    import boto3

    c = boto3.session.Session().client(
        "dynamodb",
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(
            parameter_validation=False,
            retries={"max_attempts": 8, "mode": "adaptive"},
            max_pool_connections=16,
        ),
    )
    c.meta.events.register("before-sign.dynamodb.BatchWriteItem", _put_prebuilt_body)
    return c


def _request_body(table: str, lines: Sequence[bytes]) -> bytes:
    name = json.dumps(table).encode()
    return (
        b'{"RequestItems":{'
        + name
        + b":["
        + b",".join(b'{"PutRequest":' + ln + b"}" for ln in lines)
        + b"]}}"
    )


def _wire(value):
    """A parsed response value back in wire form (botocore decodes B to bytes)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    if isinstance(value, set):
        return [_wire(v) for v in value]
    return value


def _send_batch(client, table: str, lines: list[bytes]) -> int:
    """One BatchWriteItem of up to 25 lines, retrying UnprocessedItems with jittered backoff."""
    attempt = 0
    while lines:
        _body.value = _request_body(table, lines)
        try:
            resp = client.batch_write_item(RequestItems={table: []})
        finally:
            _body.value = None
        left = resp.get("UnprocessedItems", {}).get(table, [])
        if not left:
            return attempt
        attempt += 1
        if attempt >= MAX_ATTEMPTS:
            raise SluiceError(
                f"DynamoDB table {table}: {len(left)} items still unprocessed after {attempt} attempts"
            )
        lines = [
            json.dumps({"Item": _wire(r["PutRequest"]["Item"])}, ensure_ascii=False).encode()
            for r in left
        ]
        time.sleep(min(5.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
    return attempt


class SdkBatchWriter:
    """BatchWriteItem through a botocore client (the in-process emulator needs this path)."""

    def __init__(self, client):
        self.client = client

    def send_batch(self, table: str, lines: list[bytes]) -> None:
        _send_batch(self.client, table, lines)


def _writer(target):
    """A client or a writer: anything with send_batch(table, lines), or a botocore client."""
    return target if hasattr(target, "send_batch") else SdkBatchWriter(target)


def _send_isolating(
    writer, table: str, lines: list[bytes], key_names: Sequence[str]
) -> tuple[int, Rejected]:
    """Send a batch; if DynamoDB refuses it as invalid (one bad item fails all 25), halve it
    until each refused item stands alone, and return those with DynamoDB's reason."""
    try:
        writer.send_batch(table, lines)
        return len(lines), NO_REJECTS
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ValidationException":
            raise
        if len(lines) == 1:
            item = json.loads(lines[0])["Item"]
            key = {k: next(iter(item[k].values())) for k in key_names if k in item}
            return 0, Rejected(
                [key], [f"DynamoDB refused the item: {exc.response['Error'].get('Message')}"]
            )
    half = len(lines) // 2
    a = _send_isolating(writer, table, lines[:half], key_names)
    b = _send_isolating(writer, table, lines[half:], key_names)
    return a[0] + b[0], a[1] + b[1]


def write_page_items(
    target, table: str, lines: Sequence[bytes], key_names: Sequence[str], *, threads: int = 4
) -> tuple[int, Rejected]:
    """Write a page's item lines in batches of 25 (in parallel); returns (written, rejected).
    `target`: an HttpBatchWriter, or a botocore client."""
    writer = _writer(target)
    batches = [list(lines[i : i + BATCH]) for i in range(0, len(lines), BATCH)]
    if not batches:
        return 0, NO_REJECTS
    if threads <= 1 or len(batches) == 1:
        results = [_send_isolating(writer, table, b, key_names) for b in batches]
    else:
        with ThreadPoolExecutor(threads) as pool:
            results = list(
                pool.map(lambda b: _send_isolating(writer, table, b, key_names), batches)
            )
    written = sum(r[0] for r in results)
    rejected = NO_REJECTS
    for _, r in results:
        rejected = rejected + r
    return written, rejected


def write_items(target, table: str, lines: Sequence[bytes], *, threads: int = 4) -> int:
    """Write every item line to `table` in batches of 25; returns items written (raises on a
    refused item: see write_page_items for the form that reports them)."""
    writer = _writer(target)
    batches = [list(lines[i : i + BATCH]) for i in range(0, len(lines), BATCH)]
    if not batches:
        return 0
    if threads <= 1 or len(batches) == 1:
        for b in batches:
            writer.send_batch(table, b)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda b: writer.send_batch(table, b), batches))
    return len(lines)
