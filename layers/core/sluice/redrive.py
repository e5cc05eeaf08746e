"""`sluice redrive`: move failed pages' messages from each stage's dead-letter queue back to
the stage's queue, and mark those pages in the manifest as waiting for their retry.

The same code runs against a deployed stack and the local runtime's emulator; it takes the
SQS client and the manifest it works on.

Two ways to move messages:
- SQS StartMessageMoveTask, where the service offers it (AWS) and every message of the
  dead-letter queue goes back (no run named). The messages are read first, without
  consuming them, to learn which pages they carry.
- A receive / send / delete loop where it does not (the local emulator has no move task) or
  when only one run's messages may move: dead-letter queues are shared by every run of a
  stack, and a move task cannot filter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import SluiceError
from .events import s3_object_keys
from .manifest import Manifest
from .staging import PageRef

STAGES = ("extract", "transform", "load")
# While the loop works, a message it has read stays hidden from other readers this long.
HIDE_SECONDS = 300
MOVE_TASK_POLL_SECONDS = 5


@dataclass(frozen=True, slots=True)
class StageQueues:
    """A stage's queue and its dead-letter queue (URLs and ARNs)."""

    stage: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str


@dataclass(slots=True)
class Redriven:
    """What one stage's redrive did."""

    stage: str
    moved: int = 0  # messages sent back to the stage's queue
    left: int = 0  # messages of other runs, left in the dead-letter queue
    pages: list[PageRef] = field(default_factory=list)  # pages those messages carry
    marked: int = 0  # of them, pages that were failed and now wait for the retry
    unreadable: int = 0  # messages naming no page (moved all the same)
    how: str = "loop"  # "loop" or "move-task"

    def to_dict(self) -> dict:
        return {
            "stage": self.stage,
            "moved": self.moved,
            "left_for_other_runs": self.left,
            "pages": sorted(r.label for r in self.pages),
            "pages_marked": self.marked,
            "unreadable": self.unreadable,
            "how": self.how,
        }


def pages_of(stage: str, body: str) -> list[PageRef]:
    """The pages a stage's message is about: a page message for extract, an S3 notification
    of staged objects for transform and load. [] when the body names none."""
    try:
        if stage == "extract":
            return [PageRef.from_dict(json.loads(body))]
        return [PageRef.from_key(k)[0] for k in s3_object_keys(body)]
    except (ValueError, KeyError, TypeError):
        return []


def redrive(
    sqs,
    manifest: Manifest,
    queues: Iterable[StageQueues],
    *,
    run_id: str | None = None,
    move_task: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> list[Redriven]:
    """Move each stage's dead-letter messages back (only run `run_id`'s when given) and mark
    their pages redriven. `move_task` says the service offers StartMessageMoveTask."""
    say = on_progress or (lambda _msg: None)
    out = []
    for q in queues:
        if move_task and run_id is None:
            r = _move_task(sqs, manifest, q, say)
        else:
            r = _loop(sqs, manifest, q, run_id, say)
        out.append(r)
    return out


def _mark(manifest: Manifest, r: Redriven, refs: list[PageRef]) -> None:
    for ref in refs:
        r.pages.append(ref)
        if manifest.mark_redriven(ref, r.stage):
            r.marked += 1


def _receive(sqs, url: str, hide: int) -> list[dict]:
    return sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=hide,
        WaitTimeSeconds=1,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])


def _loop(sqs, manifest: Manifest, q: StageQueues, run_id: str | None, say) -> Redriven:
    """Receive, send to the stage's queue, then delete: a crash in between leaves a message
    in both queues, which the stages tolerate (a page done twice changes nothing)."""
    r = Redriven(q.stage)
    others: list[dict] = []
    while msgs := _receive(sqs, q.dlq_url, HIDE_SECONDS):
        mine, refs_of = [], {}
        for m in msgs:
            refs = pages_of(q.stage, m["Body"])
            if run_id is not None and (not refs or any(x.run_id != run_id for x in refs)):
                others.append(m)
                continue
            mine.append(m)
            refs_of[m["MessageId"]] = refs
        if not mine:
            continue
        entries = [
            {
                "Id": str(i),
                "MessageBody": m["Body"],
                **(
                    {"MessageAttributes": m["MessageAttributes"]}
                    if m.get("MessageAttributes")
                    else {}
                ),
            }
            for i, m in enumerate(mine)
        ]
        resp = sqs.send_message_batch(QueueUrl=q.queue_url, Entries=entries)
        if resp.get("Failed"):
            f = resp["Failed"][0]
            raise SluiceError(
                f"redrive {q.stage}: SQS refused to send {len(resp['Failed'])} messages back to "
                f"{q.queue_url} ({f.get('Code')}: {f.get('Message')}); they stay in the "
                "dead-letter queue: run redrive again"
            )
        for m in mine:
            refs = refs_of[m["MessageId"]]
            if not refs:
                r.unreadable += 1
            _mark(manifest, r, refs)
        sqs.delete_message_batch(
            QueueUrl=q.dlq_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(mine)
            ],
        )
        r.moved += len(mine)
        say(f"{q.stage}: {r.moved} messages moved back")
    # Other runs' messages become visible again at once, for their own redrive.
    for m in others:
        sqs.change_message_visibility(
            QueueUrl=q.dlq_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
        )
    r.left = len(others)
    return r


def _move_task(sqs, manifest: Manifest, q: StageQueues, say) -> Redriven:
    """StartMessageMoveTask of the whole dead-letter queue, after reading which pages it holds."""
    r = Redriven(q.stage, how="move-task")
    seen: dict[str, list[PageRef]] = {}
    handles = []
    while msgs := _receive(sqs, q.dlq_url, 60):
        for m in msgs:
            seen[m["MessageId"]] = pages_of(q.stage, m["Body"])
            handles.append(m["ReceiptHandle"])
    for h in handles:  # read, not consumed: visible again for the move task
        sqs.change_message_visibility(QueueUrl=q.dlq_url, ReceiptHandle=h, VisibilityTimeout=0)
    if not seen:
        return r
    task = sqs.start_message_move_task(SourceArn=q.dlq_arn, DestinationArn=q.queue_arn)
    say(f"{q.stage}: move task {task['TaskHandle'][:12]}... started for {len(seen)} messages")
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=q.dlq_arn, MaxResults=1)["Results"]
        status = tasks[0]["Status"] if tasks else "COMPLETED"
        if status in ("COMPLETED", "FAILED", "CANCELLED"):
            break
        time.sleep(MOVE_TASK_POLL_SECONDS)
    if status != "COMPLETED":
        raise SluiceError(
            f"redrive {q.stage}: the SQS message move task ended {status}: "
            f"{tasks[0].get('FailureReason', 'no reason given')}"
        )
    r.moved = (
        int(tasks[0].get("ApproximateNumberOfMessagesMoved", len(seen))) if tasks else len(seen)
    )
    for refs in seen.values():
        if not refs:
            r.unreadable += 1
        _mark(manifest, r, refs)
    return r


def render(results: list[Redriven], run_id: str | None) -> str:
    who = f"run {run_id}" if run_id else "every run"
    lines = [f"Redrive of {who}:"]
    for r in results:
        pages = sorted(p.label for p in r.pages)
        shown = ", ".join(pages[:10]) + (f" and {len(pages) - 10} more" if len(pages) > 10 else "")
        lines.append(
            f"  {r.stage:<9} {r.moved:>5} messages back to the queue ({r.how})"
            + (f", {r.left} of other runs left" if r.left else "")
            + (f": {shown}" if shown else "")
        )
    if not any(r.moved for r in results):
        lines.append("  nothing to redrive: the dead-letter queues hold no message of it")
    return "\n".join(lines) + "\n"
