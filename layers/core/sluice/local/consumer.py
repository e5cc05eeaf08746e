"""What Lambda does for an SQS event source, as the local runtime does it: poll the queue,
call the function's handler with a batch, delete what it finished and let the rest come back.

Shared by the runtime's consumer threads and its worker processes (workers.py); nothing here
imports the emulator."""

from __future__ import annotations

import importlib.util
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import aws

ACCOUNT = "123456789012"
IDLE_SECONDS = 0.05  # how long `ready` waits before the consumer looks again, and sees `stop`
RETRY_DELAY_SECONDS = (
    1  # a failed message reappears after this, not the deployed visibility timeout
)


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int = 1024
    timeout: float = 300
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{aws.region()}:{ACCOUNT}:function:{self.function_name}"

    @property
    def function_version(self) -> str:
        return "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout - (time.monotonic() - self.started)) * 1000))


@dataclass(frozen=True)
class Source:
    """An SQS event source mapping: the queue, and the function its messages go to."""

    queue: str  # logical id
    url: str
    arn: str
    function: str  # logical id
    batch_size: int
    report_failures: bool  # ReportBatchItemFailures
    timeout: float  # the function's, in seconds


def load_handler(root: Path, code_uri: str, handler: str, logical_id: str) -> Callable:
    """A function's handler, its module loaded from the function's folder."""
    module_name, func_name = handler.rsplit(".", 1)
    path = root / code_uri / f"{module_name}.py"
    spec = importlib.util.spec_from_file_location(f"sluice_handler_{logical_id}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, func_name)


def sqs_record(m: dict, arn: str) -> dict:
    return {
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": m.get("Attributes", {}),
        "messageAttributes": m.get("MessageAttributes", {}),
        "md5OfBody": m.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": aws.region(),
    }


def consume(
    source: Source,
    *,
    invoke: Callable[[dict], object],
    stop,
    count: Callable[[str, str], None],
    wait_seconds: int = 0,
    ready: Callable[[float], bool] | None = None,
) -> None:
    """Handle `source`'s messages until `stop` (an Event) is set.

    `invoke(event)` calls the handler; `count(kind, key)` records what happened: "consumed"
    and "failed" per queue (its logical id), "timed_out" per function (its logical id).
    Between receives an idle consumer waits: with the emulator in the same process,
    `ready(seconds)` (moto_hooks.message_waiter) waits for a visible message; otherwise the
    receive's long poll of `wait_seconds` does."""
    if ready is None and not wait_seconds:
        raise ValueError("consume: an idle consumer needs `ready` or a long poll to wait on")
    url = source.url
    sqs = aws.client("sqs")
    while not stop.is_set():
        if ready is not None and not ready(IDLE_SECONDS):
            continue  # nothing to receive yet; `stop` is checked again
        try:
            msgs = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, source.batch_size),
                WaitTimeSeconds=wait_seconds,
                AttributeNames=["All"],
            ).get("Messages", [])
        except Exception:  # the emulator is shutting down
            if stop.is_set():
                return
            raise
        if not msgs:
            continue
        event = {"Records": [sqs_record(m, source.arn) for m in msgs]}
        started = time.monotonic()
        try:
            resp = invoke(event) or {}
            failed_ids = {f["itemIdentifier"] for f in resp.get("batchItemFailures", [])}
            if not source.report_failures and failed_ids:
                failed_ids = {m["MessageId"] for m in msgs}
        except Exception:  # an unhandled error fails the whole batch, as on Lambda
            logging.getLogger("sluice.local").exception(
                "%s: the invocation failed; its %d messages come back", source.function, len(msgs)
            )
            failed_ids = {m["MessageId"] for m in msgs}
        if time.monotonic() - started > source.timeout:
            # Lambda ends an invocation at its timeout with an error and no response: what
            # the handler did by then stays done, and every message of the batch comes back,
            # those it had finished too. (A thread cannot be stopped, so here the handler
            # runs on; only its response is discarded.)
            count("timed_out", source.function)
            failed_ids = {m["MessageId"] for m in msgs}
        for m in msgs:
            if m["MessageId"] in failed_ids:
                count("failed", source.queue)
                sqs.change_message_visibility(
                    QueueUrl=url,
                    ReceiptHandle=m["ReceiptHandle"],
                    VisibilityTimeout=RETRY_DELAY_SECONDS,
                )
            else:
                count("consumed", source.queue)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
