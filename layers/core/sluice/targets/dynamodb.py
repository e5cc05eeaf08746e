"""DynamoDB target: table creation for local runs, and BatchWriteItem of prebuilt items.

Items arrive from the transform as DynamoDB wire JSON lines and are sent as they are, never
parsed and serialised again. Two writers share the batching, retries, write-rate pacing and
isolation of refused items: HttpBatchWriter (targets/dynamodb_http.py: signs and posts the
body itself, the fast path for any endpoint reachable over HTTP) and SdkBatchWriter (a botocore
client whose body is swapped in just before signing: the in-process emulator's path and the
bulk job's). A writer only makes one request (`send_once`); `send_batch` here retries it.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from ..contract import DynamoTable
from ..errors import SluiceError
from ..ratelimit import Meter, write_units
from ..staging import NO_REJECTS, Rejected

BATCH = 25
# Answers that mean "not now": the request may succeed if sent again after a while.
RETRYABLE = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
}
_body = threading.local()


class Throttled(Exception):  # noqa: N818 - a signal between a writer and send_batch
    """One request was throttled or failed in passing (5xx, connection): send it again."""

    def __init__(self, code: str, message: str = ""):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class BatchNotWritten(SluiceError):
    """Retries of a batch ran out; the page fails and its message is delivered again."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """How a batch is retried: exponential backoff with full jitter (a random wait between 0
    and base * 2**attempt, at most `cap`), for at most `attempts` requests and at most `budget`
    seconds of waiting, whichever ends first. `sleep` and `jitter` are for tests."""

    attempts: int = 10
    base: float = 0.05
    cap: float = 5.0
    budget: float = 60.0
    sleep: Callable[[float], None] | None = None  # None: time.sleep
    jitter: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        return self.jitter() * min(self.cap, self.base * 2**attempt)

    def wait(self, seconds: float) -> None:
        (self.sleep or time.sleep)(seconds)


BACKOFF = Backoff()


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


def make_client(endpoint_url: str | None, region: str, *, retries: bool = True):
    """A client whose BatchWriteItem sends the prebuilt body (validation is pointless there).

    `retries=False` for a client that only writes batches: send_batch retries them itself, so
    one bounded policy applies instead of botocore's attempts inside each of its own."""
    import boto3

    policy = (
        {"max_attempts": 8, "mode": "adaptive"}
        if retries
        else {"total_max_attempts": 1, "mode": "standard"}
    )
    c = boto3.session.Session().client(
        "dynamodb",
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(parameter_validation=False, retries=policy, max_pool_connections=16),
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


class SdkBatchWriter:
    """BatchWriteItem through a botocore client (the in-process emulator needs this path)."""

    def __init__(self, client):
        self.client = client

    def send_once(self, table: str, lines: list[bytes]) -> list[bytes]:
        """One BatchWriteItem; returns the lines DynamoDB left unprocessed. Raises Throttled
        to be sent again, ClientError (ValidationException...) when refused."""
        _body.value = _request_body(table, lines)
        try:
            resp = self.client.batch_write_item(RequestItems={table: []})
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if code in RETRYABLE or status >= 500:
                raise Throttled(code or f"HTTP {status}", str(exc)) from exc
            raise
        except (BotoConnectionError, HTTPClientError) as exc:
            raise Throttled("ConnectionError", str(exc)) from exc
        finally:
            _body.value = None
        left = resp.get("UnprocessedItems", {}).get(table, [])
        return [
            json.dumps({"Item": _wire(r["PutRequest"]["Item"])}, ensure_ascii=False).encode()
            for r in left
        ]


def send_batch(
    writer,
    table: str,
    lines: list[bytes],
    *,
    backoff: Backoff = BACKOFF,
    meter: Meter | None = None,
    page: str = "",
) -> None:
    """Send up to 25 lines until every one is written: UnprocessedItems and throttled or
    failed requests are sent again after `backoff`. Each request is paid for on `meter`
    first (its bucket holds it to the write-rate cap). Raises BatchNotWritten when the
    retries run out, so the page fails and SQS delivers it again: nothing is dropped."""
    attempt, slept = 0, 0.0
    while True:
        if meter is not None:
            meter.pay(lines)
        try:
            left = writer.send_once(table, lines)
            if not left:
                return
            last = f"{len(left)} of {len(lines)} items unprocessed"
            lines = left
        except Throttled as exc:
            last = str(exc)[:300]
        attempt += 1
        delay = backoff.delay(attempt)
        if attempt >= backoff.attempts or slept + delay > backoff.budget:
            where = f"page {page}: " if page else ""
            raise BatchNotWritten(
                f"{where}DynamoDB table {table}: {len(lines)} items not written after {attempt} "
                f"attempts and {slept:.1f} s of backoff (last answer: {last}); the page will be "
                f"tried again. If this persists, lower $.target.tables.{table}.write_rate or "
                "raise the table's write capacity"
            )
        backoff.wait(delay)
        slept += delay


def _writer(target):
    """A client or a writer: anything with send_once(table, lines), or a botocore client."""
    return target if hasattr(target, "send_once") else SdkBatchWriter(target)


def _batches(lines: Sequence[bytes], max_units: float | None) -> list[list[bytes]]:
    """Up to 25 lines a batch; under a cap, also at most `max_units` units (one line at least)."""
    if max_units is None:
        return [list(lines[i : i + BATCH]) for i in range(0, len(lines), BATCH)]
    out, batch, units = [], [], 0
    for line in lines:
        u = write_units(line)
        if batch and (len(batch) == BATCH or units + u > max_units):
            out.append(batch)
            batch, units = [], 0
        batch.append(line)
        units += u
    if batch:
        out.append(batch)
    return out


def _send_isolating(
    send: Callable[[list[bytes]], None], lines: list[bytes], key_names: Sequence[str]
) -> tuple[int, Rejected]:
    """Send a batch; if DynamoDB refuses it as invalid (one bad item fails all 25), halve it
    until each refused item stands alone, and return those with DynamoDB's reason."""
    try:
        send(lines)
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
    a = _send_isolating(send, lines[:half], key_names)
    b = _send_isolating(send, lines[half:], key_names)
    return a[0] + b[0], a[1] + b[1]


def _each(fn: Callable, batches: list, threads: int) -> list:
    if threads <= 1 or len(batches) == 1:
        return [fn(b) for b in batches]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, batches))


def write_page_items(
    target,
    table: str,
    lines: Sequence[bytes],
    key_names: Sequence[str],
    *,
    threads: int = 4,
    meter: Meter | None = None,
    backoff: Backoff = BACKOFF,
    page: str = "",
) -> tuple[int, Rejected]:
    """Write a page's item lines in batches of 25 (in parallel); returns (written, rejected).
    `target`: an HttpBatchWriter, or a botocore client. `meter` counts the units sent and,
    with a bucket, holds the writes to the worker's share of the table's write-rate cap
    (batches then carry at most a second of that share). `page` names the page in errors."""
    writer = _writer(target)
    batches = _batches(lines, meter.max_request_units if meter is not None else None)
    if not batches:
        return 0, NO_REJECTS

    def send(b: list[bytes]) -> None:
        send_batch(writer, table, b, backoff=backoff, meter=meter, page=page)

    results = _each(lambda b: _send_isolating(send, b, key_names), batches, threads)
    written = sum(r[0] for r in results)
    rejected = NO_REJECTS
    for _, r in results:
        rejected = rejected + r
    return written, rejected


def write_items(
    target, table: str, lines: Sequence[bytes], *, threads: int = 4, backoff: Backoff = BACKOFF
) -> int:
    """Write every item line to `table` in batches of 25; returns items written (raises on a
    refused item: see write_page_items for the form that reports them)."""
    writer = _writer(target)
    batches = _batches(lines, None)
    _each(lambda b: send_batch(writer, table, b, backoff=backoff), batches, threads)
    return len(lines)
