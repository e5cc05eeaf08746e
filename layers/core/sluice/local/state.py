"""A local run's AWS state kept on disk, so the run outlives `sluice run --local`.

The local runtime's emulator lives in the process that ran the migration. When that process
ends, what a deployed stack would still hold is written under the run's folder
(`.sluice/runs/<run id>/state/`):

- `manifest.jsonl`: the run's manifest items (DynamoDB JSON);
- `queues/<logical id>.jsonl`: the messages left in every queue and dead-letter queue;
- `s3/...`: the run's staged objects (`runs/<run id>/...` of the staging bucket);
- `dynamodb/<table>.json` + `.jsonl`: target tables the emulator held (their description
  and items); tables at an endpoint (`target.endpoint_url`) keep their own state;
- `run.json`: the contract, where it came from, and how the execution ended.

`sluice status`, `redrive` and `resume` with `--local` load it into a fresh emulator, do
their work there as on AWS, and write back what changed. A run that succeeded keeps only
its manifest, staged pages and `run.json` (for `sluice status` and `sluice verify`): nothing
is left to redrive.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import aws
from ..errors import SluiceError

if TYPE_CHECKING:
    from .runtime import LocalStack

STATE_VERSION = 1
PARTS = ("manifest", "queues", "s3", "targets")
DRAIN_SETTLE_SECONDS = (
    5  # how long a message a stopped consumer left in flight may take to reappear
)


def runs_root() -> Path:
    return Path(".sluice") / "runs"


def run_dir(run_id: str, root: Path | None = None) -> Path:
    return (root or runs_root()) / run_id


class LocalState:
    """One run's saved state: `save` from a live local stack, `restore` into a fresh one."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.dir = self.folder / "state"

    # ---------------------------------------------------------------- metadata
    @property
    def meta_path(self) -> Path:
        return self.dir / "run.json"

    def exists(self) -> bool:
        return self.meta_path.exists()

    def meta(self) -> dict:
        if not self.exists():
            raise SluiceError(
                f"no saved local run in {self.folder}: `sluice run --local` saves each run's "
                "state there when it ends (check the run id, and run from the same folder)"
            )
        meta = json.loads(self.meta_path.read_text())
        if meta.get("version") != STATE_VERSION:
            raise SluiceError(
                f"{self.meta_path}: saved by another version of sluice (state version "
                f"{meta.get('version')}, this one reads {STATE_VERSION})"
            )
        return meta

    def write_meta(self, **fields) -> None:
        meta = self.meta() if self.exists() else {"version": STATE_VERSION}
        meta.update(fields, saved_at=time.time())
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.meta_path, json.dumps(meta, indent=2, default=str))

    # ---------------------------------------------------------------- save
    def save(self, stack: LocalStack, run_id: str, parts=PARTS, target_tables=()) -> dict:
        """Write `parts` of the live stack's state for `run_id`; returns what was saved."""
        stack.stop_consumers()
        self.dir.mkdir(parents=True, exist_ok=True)
        saved = {}
        if "manifest" in parts:
            saved["manifest_items"] = self._save_manifest(stack, run_id)
        if "queues" in parts:
            saved["queue_messages"] = self._save_queues(stack)
        if "s3" in parts:
            saved["s3_objects"] = self._save_s3(stack, run_id)
        if "targets" in parts:
            saved["target_items"] = self._save_targets(target_tables)
        return saved

    def drop(self, parts) -> None:
        """Forget saved parts (a run that succeeded needs no staged objects kept)."""
        for part, name in (("s3", "s3"), ("targets", "dynamodb"), ("queues", "queues")):
            if part in parts:
                shutil.rmtree(self.dir / name, ignore_errors=True)

    def _save_manifest(self, stack: LocalStack, run_id: str) -> int:
        ddb = aws.client("dynamodb")
        items, kwargs = (
            [],
            {
                "TableName": stack.environment["SLUICE_MANIFEST_TABLE"],
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": f"RUN#{run_id}"}},
            },
        )
        while True:
            resp = ddb.query(**kwargs)
            items.extend(resp["Items"])
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        _write_atomic(self.dir / "manifest.jsonl", "".join(json.dumps(i) + "\n" for i in items))
        return len(items)

    def _save_queues(self, stack: LocalStack) -> dict[str, int]:
        sqs = aws.client("sqs")
        qdir = self.dir / "queues"
        qdir.mkdir(parents=True, exist_ok=True)
        counts = {}
        # Stage queues first: draining one can move a message that used its last receive to
        # its dead-letter queue, which is drained after.
        for q in sorted(stack.template.queues.values(), key=lambda q: q.dlq is None):
            msgs = _drain(sqs, stack.refs[q.logical_id])
            _write_atomic(
                qdir / f"{q.logical_id}.jsonl",
                "".join(
                    json.dumps({"Body": m["Body"], "MessageAttributes": m.get("MessageAttributes")})
                    + "\n"
                    for m in msgs
                ),
            )
            counts[q.logical_id] = len(msgs)
        return counts

    def _save_s3(self, stack: LocalStack, run_id: str) -> int:
        s3, bucket = aws.client("s3"), stack.environment["SLUICE_BUCKET"]
        tmp = self.dir / "s3.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        n = 0
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"runs/{run_id}/"
        ):
            for o in page.get("Contents", []):
                path = tmp / o["Key"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
                n += 1
        shutil.rmtree(self.dir / "s3", ignore_errors=True)
        tmp.rename(self.dir / "s3")
        return n

    def _save_targets(self, tables) -> dict[str, int]:
        ddb = aws.client("dynamodb")
        tdir = self.dir / "dynamodb"
        shutil.rmtree(tdir, ignore_errors=True)
        tdir.mkdir(parents=True)
        counts = {}
        for name in tables:
            try:
                desc = ddb.describe_table(TableName=name)["Table"]
            except ddb.exceptions.ResourceNotFoundException:
                continue  # an import that never ran leaves no table
            keep = ("AttributeDefinitions", "KeySchema", "TableName")
            spec = {k: desc[k] for k in keep}
            if desc.get("GlobalSecondaryIndexes"):
                spec["GlobalSecondaryIndexes"] = [
                    {k: g[k] for k in ("IndexName", "KeySchema", "Projection")}
                    for g in desc["GlobalSecondaryIndexes"]
                ]
            (tdir / f"{name}.json").write_text(json.dumps(spec))
            n = 0
            with open(tdir / f"{name}.jsonl", "w") as f:
                kwargs = {"TableName": name}
                while True:
                    resp = ddb.scan(**kwargs)
                    for item in resp["Items"]:
                        f.write(json.dumps(item) + "\n")
                    n += len(resp["Items"])
                    if "LastEvaluatedKey" not in resp:
                        break
                    kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
            counts[name] = n
        return counts

    # ---------------------------------------------------------------- restore
    def restore(self, stack: LocalStack, parts=PARTS) -> dict:
        """Load saved parts into a fresh local stack: manifest, staged objects (with the
        bucket's notifications off, so nothing restarts), target tables, then the queues."""
        self.meta()
        restored = {}
        if "manifest" in parts:
            restored["manifest_items"] = self._restore_manifest(stack)
        if "s3" in parts:
            restored["s3_objects"] = self._restore_s3(stack)
        if "targets" in parts:
            restored["target_items"] = self._restore_targets()
        if "queues" in parts:
            restored["queue_messages"] = self._restore_queues(stack)
        self.restored = restored
        return restored

    def restorer(self, parts=PARTS):
        """`restore` of `parts`, for LocalStack(restore=...)."""
        return lambda stack: self.restore(stack, parts)

    def _restore_manifest(self, stack: LocalStack) -> int:
        items = _read_jsonl(self.dir / "manifest.jsonl")
        _batch_put(stack.environment["SLUICE_MANIFEST_TABLE"], items)
        return len(items)

    def _restore_s3(self, stack: LocalStack) -> int:
        root = self.dir / "s3"
        if not root.exists():
            return 0
        s3, bucket = aws.client("s3"), stack.environment["SLUICE_BUCKET"]
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
        n = 0
        try:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                s3.put_object(
                    Bucket=bucket, Key=path.relative_to(root).as_posix(), Body=path.read_bytes()
                )
                n += 1
        finally:
            stack.configure_notifications()
        return n

    def _restore_targets(self) -> dict[str, int]:
        tdir = self.dir / "dynamodb"
        if not tdir.exists():
            return {}
        ddb = aws.client("dynamodb")
        counts = {}
        for spec_path in sorted(tdir.glob("*.json")):
            spec = json.loads(spec_path.read_text())
            gsis = spec.pop("GlobalSecondaryIndexes", [])
            kwargs = {**spec, "BillingMode": "PAY_PER_REQUEST"}
            if gsis:
                kwargs["GlobalSecondaryIndexes"] = gsis
            ddb.create_table(**kwargs)  # a fresh emulator holds no table yet
            items = _read_jsonl(spec_path.with_suffix(".jsonl"))
            _batch_put(spec["TableName"], items)
            counts[spec["TableName"]] = len(items)
        return counts

    def _restore_queues(self, stack: LocalStack) -> dict[str, int]:
        sqs = aws.client("sqs")
        counts = {}
        for path in sorted((self.dir / "queues").glob("*.jsonl")):
            lid = path.stem
            if lid not in stack.refs:
                raise SluiceError(f"{path}: queue {lid} is not in template.yaml any more")
            msgs = _read_jsonl(path)
            for i in range(0, len(msgs), 10):
                entries = [
                    {
                        "Id": str(j),
                        "MessageBody": m["Body"],
                        **(
                            {"MessageAttributes": m["MessageAttributes"]}
                            if m.get("MessageAttributes")
                            else {}
                        ),
                    }
                    for j, m in enumerate(msgs[i : i + 10])
                ]
                resp = sqs.send_message_batch(QueueUrl=stack.refs[lid], Entries=entries)
                if resp.get("Failed"):
                    raise SluiceError(f"restoring queue {lid}: {resp['Failed'][0]}")
            counts[lid] = len(msgs)
        return counts


def _drain(sqs, url: str) -> list[dict]:
    """Every message of a queue, consumed: visible ones at once, those a stopped consumer
    left in flight once they reappear (the local runtime retries after a second)."""
    out = []
    deadline = time.monotonic() + DRAIN_SETTLE_SECONDS
    while True:
        msgs = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=600,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if msgs:
            out.extend(msgs)
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
                ],
            )
            continue
        hidden = int(
            sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]["ApproximateNumberOfMessagesNotVisible"]
        )
        if hidden == 0 or time.monotonic() > deadline:
            return out
        time.sleep(0.25)


def _batch_put(table: str, items: list[dict]) -> None:
    ddb = aws.client("dynamodb")
    for i in range(0, len(items), 25):
        requests = {table: [{"PutRequest": {"Item": it}} for it in items[i : i + 25]]}
        while requests:
            requests = ddb.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
