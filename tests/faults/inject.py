"""Faults injected into a local run, each counted: wrappers around what the stages call at run
time (the source reader, the transforms, the target writers, the function invocations), a
thread that KILLs the source connection of a page being read, and botocore handlers that
throttle DynamoDB or leave items unprocessed.

Which call fails is decided by a policy (`FirstCalls`, `Rate`) from the page the call works
on, so that a fault can hit a page's first delivery only, or every delivery until the page
lands in its dead-letter queue.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable

import pymysql
from botocore.awsrequest import AWSResponse
from sluice import aws, stages, transform
from sluice.events import s3_object_keys
from sluice.local.runtime import LocalStack
from sluice.targets import dynamodb as ddb_target
from sluice.targets import mysql as mysql_target

STAGE_FUNCTIONS = {"transform": "TransformFunction", "load": "LoadFunction"}
CHUNK_ROWS = 50  # a crashing read streams this many rows, then crashes: mid-page


class InjectedFault(Exception):
    """A failure this suite caused on purpose (a crash, a timeout), never one of Sluice's."""


class Faults:
    """Faults injected in one test, by kind (thread-safe: the stages run on several threads)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts: Counter = Counter()

    def add(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self.counts[kind] += n

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items())) or "none"


Policy = Callable[[Hashable], bool]


class FirstCalls:
    """Fail the first `times` calls for each page (of the first `pages` pages seen, if given):
    times=1 is a fault that a queue's redelivery gets past, times=3 one that exhausts a
    message's receives and sends the page to its dead-letter queue."""

    def __init__(self, times: int = 1, pages: int | None = None):
        self.times, self.pages = times, pages
        self._lock = threading.Lock()
        self._calls: Counter = Counter()
        self._order: dict[Hashable, int] = {}

    def __call__(self, page: Hashable) -> bool:
        with self._lock:
            self._order.setdefault(page, len(self._order) + 1)
            self._calls[page] += 1
            chosen = self.pages is None or self._order[page] <= self.pages
            return chosen and self._calls[page] <= self.times


class Rate:
    """Fail a call with probability `rate` (seeded); besides, a page picked with probability
    `sticky` when first seen fails its first `sticky_times` calls in a row, so that it uses up
    its receives and lands in the dead-letter queue. Its fault is gone after that, as after a
    fix, so that a redrive gets it through."""

    def __init__(self, seed: int, rate: float, sticky: float, sticky_times: int = 3):
        self.rng = random.Random(seed)
        self.rate, self.sticky, self.sticky_times = rate, sticky, sticky_times
        self._lock = threading.Lock()
        self._left: dict[Hashable, int] = {}

    def __call__(self, page: Hashable) -> bool:
        with self._lock:
            if page not in self._left:
                self._left[page] = self.sticky_times if self.rng.random() < self.sticky else 0
            if self._left[page]:
                self._left[page] -= 1
                return True
            return self.rng.random() < self.rate


def _first_value(table) -> object:
    """A page's identity within a table: its first row's first column (the key here)."""
    return table.column(0)[0].as_py() if table.num_rows else None


# ---------------------------------------------------------------- extract


def crash_extract_mid_page(monkeypatch, faults: Faults, policy: Policy) -> None:
    """The stages' source reader, when the policy says so, streams its first chunk of a page,
    then crashes (as a worker dies mid-read): nothing of that page is staged."""
    real = stages.read_page

    def read_page(conn, database, table, key, lo, hi, **kwargs):
        if not policy(("extract", table.name, repr(lo))):
            yield from real(conn, database, table, key, lo, hi, **kwargs)
            return
        kwargs["chunk_rows"] = CHUNK_ROWS
        batches = real(conn, database, table, key, lo, hi, **kwargs)
        try:
            first = next(batches, None)
        finally:
            batches.close()
        if first is not None:
            yield first
        faults.add("extract crash")
        raise InjectedFault(
            f"injected: extract of {table.name} (keys after {lo}) crashed after "
            f"{0 if first is None else first.num_rows} rows"
        )

    monkeypatch.setattr(stages, "read_page", read_page)


class ReadKiller:
    """A thread watching information_schema.PROCESSLIST for a page's SELECT on `table` and
    issuing a real `KILL <id>` of the connection running it.

    So that the KILL lands mid-read (and not after the server has sent the whole page into the
    socket buffers), the stages' reader streams in chunks and, on a page's first read, pauses
    after its first chunk until the KILL is done; it then reads on into the dead connection.
    """

    def __init__(self, admin, database: str, table: str, pages: int, faults: Faults):
        self.admin, self.faults, self.pages = admin, faults, pages
        self.pattern = f"SELECT % FROM `{database}`.`{table}` WHERE % ORDER BY %"
        self.armed = threading.Event()
        self.killed = threading.Event()
        self.reader_ids: list[int] = []  # thread ids of the connections paused mid-read
        self.killed_ids: list[int] = []  # what the watcher found running the SELECT and killed
        self.interrupted: list[str] = []  # the errors the reads met afterwards
        self.errors: list[str] = []  # the watcher's own, if it failed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="read-killer", daemon=True)

    def install(self, monkeypatch) -> None:
        real = stages.read_page
        seen: set[str] = set()

        def read_page(conn, database, table, key, lo, hi, **kwargs):
            first_read = repr(lo) not in seen and len(seen) < self.pages
            seen.add(repr(lo))
            if not first_read:
                yield from real(conn, database, table, key, lo, hi, **kwargs)
                return
            kwargs["chunk_rows"] = 500
            batches = real(conn, database, table, key, lo, hi, **kwargs)
            yield next(batches)
            self.killed.clear()
            self.reader_ids.append(conn.thread_id())
            self.armed.set()
            self.killed.wait(10)
            try:
                yield from batches
            except Exception as exc:
                # pymysql's cleanup on the dead socket may raise over the lost connection:
                # the lost connection is then the context.
                cause = exc.__context__ if isinstance(exc.__context__, pymysql.err.Error) else exc
                self.interrupted.append(f"{type(cause).__name__}{cause.args}")
                raise

        monkeypatch.setattr(stages, "read_page", read_page)
        self._thread.start()

    def _watch(self) -> None:
        try:
            self._watch_processlist()
        except BaseException as exc:  # the test reports it: a watcher that died kills nothing
            self.errors.append(repr(exc))
            raise

    def _watch_processlist(self) -> None:
        with self.admin.cursor() as cur:
            while not self._stop.is_set():
                if not self.armed.wait(0.05):
                    continue
                cur.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST "
                    "WHERE COMMAND = 'Query' AND INFO LIKE %s AND ID <> CONNECTION_ID()",
                    (self.pattern,),
                )
                ids = [r[0] for r in cur.fetchall()]
                if not ids:
                    time.sleep(0.01)
                    continue
                for thread_id in ids:
                    cur.execute(f"KILL {int(thread_id)}")
                    self.killed_ids.append(thread_id)
                    self.faults.add("MySQL KILL mid-read")
                self.armed.clear()
                self.killed.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


# ---------------------------------------------------------------- transform


def crash_transform(monkeypatch, faults: Faults, policy: Policy, target_kind: str) -> None:
    """The transform of a page raises (before anything of it is staged)."""
    name = "to_mysql_rows" if target_kind == "mysql" else "to_dynamodb_items"
    real = getattr(transform, name)

    def wrapped(page, *args, **kwargs):
        if page.num_rows and policy(("transform", _first_value(page))):
            faults.add("transform crash")
            raise InjectedFault(
                f"injected: transform crashed on the page from key {_first_value(page)}"
            )
        return real(page, *args, **kwargs)

    monkeypatch.setattr(transform, name, wrapped)


# ---------------------------------------------------------------- load


def crash_load_after_half(monkeypatch, faults: Faults, policy: Policy, target_kind: str) -> None:
    """The load of a page really writes (and commits) its first half, then crashes."""
    if target_kind == "mysql":
        real_rows = mysql_target.load_page_rows

        def load_page_rows(conn, database, table, rows, key, on_conflict="replace"):
            if rows.num_rows > 1 and policy(("load", _first_value(rows))):
                half = rows.num_rows // 2
                real_rows(conn, database, table, rows.slice(0, half), key, on_conflict)
                faults.add("load crash after half")
                raise InjectedFault(
                    f"injected: load crashed after committing {half} of {rows.num_rows} rows"
                )
            return real_rows(conn, database, table, rows, key, on_conflict)

        monkeypatch.setattr(mysql_target, "load_page_rows", load_page_rows)
        return
    real_items = ddb_target.write_page_items

    def write_page_items(target, table, lines, key_names, **kwargs):
        if len(lines) > 1 and policy(("load", lines[0])):
            half = len(lines) // 2
            real_items(target, table, lines[:half], key_names, **kwargs)
            faults.add("load crash after half")
            raise InjectedFault(
                f"injected: load crashed after writing {half} of {len(lines)} items"
            )
        return real_items(target, table, lines, key_names, **kwargs)

    monkeypatch.setattr(ddb_target, "write_page_items", write_page_items)


def time_out_after_load(monkeypatch, faults: Faults, policy: Policy, seconds: float) -> None:
    """A MySQL load that writes its page, then runs past the function's timeout (`seconds`):
    Lambda would end it there, so nothing after the write happens (the manifest is not
    advanced) and the invocation fails (the local runtime fails its whole batch)."""
    real = mysql_target.load_page_rows

    def load_page_rows(conn, database, table, rows, key, on_conflict="replace"):
        out = real(conn, database, table, rows, key, on_conflict)
        if policy(("load", _first_value(rows))):
            faults.add("handler timeout")
            time.sleep(seconds + 0.3)
            raise InjectedFault(f"injected: Task timed out after {seconds:.2f} seconds")
        return out

    monkeypatch.setattr(mysql_target, "load_page_rows", load_page_rows)


# ---------------------------------------------------------------- DynamoDB answers


def flaky_batch_writes(
    monkeypatch, faults: Faults, seed: int, throttle: float, unprocessed: float
) -> None:
    """Every DynamoDB client the stages make gets botocore handlers on BatchWriteItem: one
    answers ProvisionedThroughputExceededException instead of sending (`throttle` of the
    calls); one leaves the tail of a batch unwritten and returns it as UnprocessedItems
    (`unprocessed` of the calls): those items really are not written unless sent again."""
    rng, lock, local = random.Random(seed), threading.Lock(), threading.local()
    real = ddb_target.make_client

    def roll() -> float:
        with lock:
            return rng.random()

    def before_call(**_kwargs):
        local.dropped = None
        if roll() >= throttle:
            return None
        faults.add("DynamoDB throttled")
        error = {
            "Code": "ProvisionedThroughputExceededException",
            "Message": "injected: the level of configured provisioned throughput was exceeded",
        }
        return (
            AWSResponse("https://dynamodb.invalid/", 400, {}, None),
            {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}},
        )

    def before_sign(request, **_kwargs):
        body = json.loads(request.data)
        ((table, requests),) = body["RequestItems"].items()
        if len(requests) < 2 or roll() >= unprocessed:
            return
        with lock:
            keep = rng.randrange(1, len(requests))
        local.dropped = {table: requests[keep:]}
        faults.add("DynamoDB items unprocessed", len(requests) - keep)
        data = json.dumps({**body, "RequestItems": {table: requests[:keep]}}).encode()
        request.data = data
        request.headers["Content-Length"] = str(len(data))

    def after_call(parsed, **_kwargs):
        dropped, local.dropped = getattr(local, "dropped", None), None
        if dropped:
            parsed.setdefault("UnprocessedItems", {}).update(dropped)

    def make_client(*args, **kwargs):
        client = real(*args, **kwargs)
        events = client.meta.events
        events.register("before-call.dynamodb.BatchWriteItem", before_call)
        events.register("before-sign.dynamodb.BatchWriteItem", before_sign)
        events.register("after-call.dynamodb.BatchWriteItem", after_call)
        return client

    monkeypatch.setattr(ddb_target, "make_client", make_client)


# ---------------------------------------------------------------- duplicate S3 events


class Duplicates:
    """S3 notifications delivered twice: when the transform or load function is invoked with
    a notification the policy picks, the same body is sent to its queue once more. Every body
    seen is kept, so that all of them can be delivered again after the run."""

    def __init__(self, faults: Faults, policy: Policy):
        self.faults, self.policy = faults, policy
        self.seen: dict[str, str] = {}  # body -> queue URL
        self._lock = threading.Lock()

    def install(self, monkeypatch) -> None:
        real = LocalStack.invoke
        functions = set(STAGE_FUNCTIONS.values())

        def invoke(stack, lid, event):
            if lid in functions:
                for record in event.get("Records", []):
                    self._saw(record)
            return real(stack, lid, event)

        monkeypatch.setattr(LocalStack, "invoke", invoke)

    def _saw(self, record: dict) -> None:
        body = record["body"]
        if not s3_object_keys(body):
            return  # the s3:TestEvent
        sqs = aws.client("sqs")
        name = record["eventSourceARN"].rsplit(":", 1)[1]
        with self._lock:
            url = self.seen.get(body) or sqs.get_queue_url(QueueName=name)["QueueUrl"]
            self.seen[body] = url
        if self.policy(("duplicate", body)):
            sqs.send_message(QueueUrl=url, MessageBody=body)
            self.faults.add("duplicate S3 event")

    def deliver_all_again(self) -> int:
        """Every notification seen, sent to its queue again; returns how many."""
        sqs = aws.client("sqs")
        with self._lock:
            seen = list(self.seen.items())
        for body, url in seen:
            sqs.send_message(QueueUrl=url, MessageBody=body)
        self.faults.add("duplicate S3 event", len(seen))
        return len(seen)
