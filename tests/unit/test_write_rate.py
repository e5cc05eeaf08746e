"""DynamoDB writes under pressure: the retry loop both writers share (UnprocessedItems and
throttling, backoff with full jitter, bounded), and the write-rate cap (a token bucket per
worker, the plan's split of a table's cap) holding across every worker together.

Time is simulated throughout: buckets and backoff run on injected clocks and sleeps.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from pathlib import Path

import pytest
from sluice.config import Settings
from sluice.contract import WriteRate, parse
from sluice.errors import ContractError, SluiceError
from sluice.local.runtime import CONSUMERS, LocalStack, consumer_count
from sluice.local.template import load_yaml
from sluice.ratelimit import Meter, TokenBucket, split, table_caps, write_units
from sluice.targets.dynamodb import (
    Backoff,
    BatchNotWritten,
    Throttled,
    write_items,
    write_page_items,
)

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


class FakeDynamo:
    """A writer (send_once) answering as DynamoDB may: each request takes the next answer of
    `script` ("throttle", "ok", or n: the last n items left unprocessed), then "ok"; what it
    writes is counted per item, and each request is logged with its time and units."""

    def __init__(self, script=(), clock=None):
        self.script = list(script)
        self.clock = clock or (lambda: 0.0)
        self.written: Counter[bytes] = Counter()
        self.requests: list[tuple[float, int]] = []
        self._lock = threading.Lock()

    def send_once(self, table: str, lines: list[bytes]) -> list[bytes]:
        with self._lock:
            self.requests.append((self.clock(), sum(write_units(ln) for ln in lines)))
            answer = self.script.pop(0) if self.script else "ok"
            if answer == "throttle":
                raise Throttled("ProvisionedThroughputExceededException", "slow down")
            keep = len(lines) - (answer if isinstance(answer, int) else 0)
            for ln in lines[:keep]:
                self.written[ln] += 1
            return lines[keep:]


def item(i: int, size: int = 0) -> bytes:
    return json.dumps({"Item": {"PK": {"S": f"K#{i}"}, "pad": {"S": "x" * size}}}).encode()


# ---------------------------------------------------------------- retries


def test_unprocessed_and_throttled_requests_are_retried_until_every_item_is_written_once():
    lines = [item(i) for i in range(60)]
    # batch 1: throttled twice, then 10 left, then 3 of those left; batch 2: 25 left once
    dynamo = FakeDynamo(["throttle", "throttle", 10, 3, "ok", 25, "ok"])
    sleeps: list[float] = []
    backoff = Backoff(sleep=sleeps.append, jitter=lambda: 1.0)

    written, rejected = write_page_items(dynamo, "t", lines, ["PK"], threads=1, backoff=backoff)

    assert (written, len(rejected)) == (60, 0)
    assert dynamo.written == Counter(lines)  # each item once, none twice, none missing
    # the wait doubles with each attempt of a batch, and starts again for the next batch
    assert sleeps == [0.1, 0.2, 0.4, 0.8, 0.1]


def test_every_item_is_written_once_whatever_the_answers_and_thread_interleaving():
    rng = random.Random(7)
    script = [rng.choice(["throttle", "ok", 1, 5, 24]) for _ in range(200)]
    lines = [item(i) for i in range(500)]
    dynamo = FakeDynamo(script)
    backoff = Backoff(sleep=lambda s: None, attempts=50, budget=1e9)

    written, _ = write_page_items(dynamo, "t", lines, ["PK"], threads=4, backoff=backoff)

    assert written == 500
    assert dynamo.written == Counter(lines)


def test_backoff_waits_grow_exponentially_with_full_jitter_up_to_the_cap():
    full = Backoff(jitter=lambda: 1.0)
    assert [full.delay(a) for a in range(1, 10)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5, 5]
    rng = random.Random(3)
    jittered = Backoff(jitter=rng.random)
    waits = [jittered.delay(a) for a in range(1, 10) for _ in range(50)]
    bounds = [min(5.0, 0.05 * 2**a) for a in range(1, 10) for _ in range(50)]
    assert all(0 <= w <= b for w, b in zip(waits, bounds, strict=True))
    assert min(waits) < 0.01 and max(waits) > 4  # the whole range is used (full jitter)


def test_retries_end_after_the_attempts_with_an_error_naming_table_and_page():
    dynamo = FakeDynamo(["throttle"] * 100)
    sleeps: list[float] = []
    backoff = Backoff(sleep=sleeps.append, jitter=lambda: 1.0)

    with pytest.raises(BatchNotWritten) as failed:
        write_page_items(dynamo, "shop", [item(1)], ["PK"], backoff=backoff, page="users#7")

    message = str(failed.value)
    assert message.startswith("page users#7: DynamoDB table shop: 1 items not written after 10")
    assert "ProvisionedThroughputExceededException" in message
    assert "$.target.tables.shop.write_rate" in message
    assert isinstance(failed.value, SluiceError)
    assert len(dynamo.requests) == 10 and len(sleeps) == 9
    assert not dynamo.written


def test_retries_end_when_the_waiting_budget_is_spent_before_the_attempts():
    dynamo = FakeDynamo(["throttle"] * 100)
    sleeps: list[float] = []
    backoff = Backoff(sleep=sleeps.append, jitter=lambda: 1.0, attempts=100, budget=12.0)

    with pytest.raises(BatchNotWritten, match=r"after 8 attempts and 11\.3 s of backoff"):
        write_items(dynamo, "shop", [item(1)], backoff=backoff)

    assert sleeps == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0]  # one more 5 s wait would pass 12 s
    assert sum(sleeps) <= backoff.budget


def test_an_unexpected_error_is_not_retried_and_propagates():
    class Broken:
        def send_once(self, table, lines):
            raise RuntimeError("bug")

    with pytest.raises(RuntimeError, match="bug"):
        write_page_items(Broken(), "t", [item(1)], ["PK"], backoff=Backoff(sleep=None))


# ---------------------------------------------------------------- the bucket and the meter


def test_a_bucket_that_starts_empty_never_lets_a_worker_ahead_of_its_rate():
    clock = FakeClock()
    bucket = TokenBucket(50, clock=clock, sleep=clock.sleep, full=False)
    taken, at = 0, []
    for _ in range(20):
        bucket.take(25)
        taken += 25
        at.append((clock.now, taken))
    assert all(units <= 50 * t + 1e-9 for t, units in at)
    assert clock.now == pytest.approx(10.0)


def test_a_meter_counts_units_sent_and_the_time_a_shared_bucket_held_its_threads():
    clock = FakeClock()
    meter = Meter(TokenBucket(100, clock=clock, sleep=clock.sleep, full=False))
    lines = [item(i, size=1500) for i in range(300)]  # 2 units each
    dynamo = FakeDynamo(clock=clock)

    written, _ = write_page_items(dynamo, "t", lines, ["PK"], threads=4, meter=meter)

    assert written == 300 and dynamo.written == Counter(lines)
    assert meter.units == 600 == sum(u for _, u in dynamo.requests)
    # the threads' waits never overlap: together they are the page's time under the cap
    assert meter.waited == pytest.approx(clock.now) == pytest.approx(6.0)
    assert meter.counts() == {"write_units": 600, "rate_wait_ms": 6000}
    assert all(u <= 100 for _, u in dynamo.requests)  # at most a second of the share a request


def test_without_a_cap_the_meter_only_counts():
    meter = Meter()
    dynamo = FakeDynamo()
    write_page_items(dynamo, "t", [item(i, size=3000) for i in range(30)], ["PK"], meter=meter)
    assert meter.counts() == {"write_units": 90, "rate_wait_ms": 0}
    assert sorted(u for _, u in dynamo.requests) == [15, 75]  # batches of 25 items, as ever


def test_write_units_are_one_per_started_kilobyte():
    assert [write_units(b"x" * n) for n in (0, 1, 1024, 1025, 4096, 400_000)] == [
        1,
        1,
        1,
        2,
        4,
        391,
    ]


# ---------------------------------------------------------------- the cap across workers


def _simulate(rate: float, lines: list[bytes]) -> list[tuple[float, int]]:
    """One worker writing `lines` under its share, on its own simulated clock from 0."""
    clock = FakeClock()
    meter = Meter(TokenBucket(rate, clock=clock, sleep=clock.sleep, full=False))
    dynamo = FakeDynamo(clock=clock)
    written, _ = write_page_items(dynamo, "shop", lines, ["PK"], threads=1, meter=meter)
    assert written == len(lines) and dynamo.written == Counter(lines)
    assert meter.units == sum(u for _, u in dynamo.requests)
    return dynamo.requests


def test_the_cap_holds_across_every_worker_of_both_paths_together():
    cap = 600.0
    plan_tables = [
        {"table": "users", "target_table": "shop", "path": "lambda", "pages": 40},
        {"table": "orders", "target_table": "shop", "path": "bulk", "pages": 500},
        {"table": "items", "target_table": "shop", "path": "bulk", "pages": 90},
        {"table": "audit", "target_table": "other", "path": "lambda", "pages": 3},
    ]
    rates = split({"shop": cap}, plan_tables)
    assert rates == {
        "shop": {"units_per_second": cap, "lambda": 200.0, "bulk": {"orders": 200, "items": 200}}
    }
    load_workers, tasks_per_job = 4, 5  # SLUICE_LOAD_CONCURRENCY; a job's parallel tasks
    shares = [rates["shop"]["lambda"] / load_workers] * load_workers
    for job in ("orders", "items"):
        shares += [rates["shop"]["bulk"][job] / tasks_per_job] * tasks_per_job
    assert sum(shares) == pytest.approx(cap)

    rng = random.Random(11)
    log: list[tuple[float, int]] = []
    largest: list[int] = []
    for w, share in enumerate(shares):
        count = int(8 * share)  # about 14 s of writing for every worker
        lines = [item(w * 10_000 + i, size=rng.choice([10, 900, 1500, 2900])) for i in range(count)]
        requests = _simulate(share, lines)
        log += requests
        largest.append(max(u for _, u in requests))
        assert largest[-1] <= share  # no request carries more than a second of its share
    log.sort()
    times = [t for t, _ in log]
    total = sum(u for _, u in log)

    # From the start, the workers together never get ahead of the cap.
    sent = 0
    for t, u in log:
        sent += u
        assert sent <= cap * t + 1e-6
    # In any stretch of W seconds they send at most W seconds of the cap, plus the request
    # each worker may have paid for just before the stretch began.
    for window in (1.0, 10.0, 60.0):
        for i, start in enumerate(times):
            inside = sum(u for t, u in log[i:] if t < start + window)
            assert inside <= cap * window + sum(largest) + 1e-6
    # And the cap is used, not merely respected: over the run, within 5% of it.
    assert total / times[-1] == pytest.approx(cap, rel=0.05)


def test_the_plan_shares_a_cap_equally_between_the_paths_writing_a_table():
    tables = [
        {"table": "a", "target_table": "t1", "path": "lambda", "pages": 2},
        {"table": "b", "target_table": "t1", "path": "lambda", "pages": 9},
        {"table": "c", "target_table": "t2", "path": "bulk", "pages": 9},
        {"table": "d", "target_table": "t2", "path": "lambda", "pages": 0},  # empty: no writer
    ]
    assert split({"t1": 300, "t2": 120}, tables) == {
        "t1": {"units_per_second": 300, "lambda": 300, "bulk": {}},
        "t2": {"units_per_second": 120, "lambda": 120, "bulk": {"c": 120}},
    }
    assert split({}, tables) == {}


def _contract(write_rate: dict | None, **table) -> dict:
    decl = {"partition_key": "PK", **table}
    if write_rate is not None:
        decl["write_rate"] = write_rate
    return {
        "version": 1,
        "source": {"database": "shop"},
        "target": {"kind": "dynamodb", "tables": {"shop": decl}},
        "tables": [
            {
                "source": "users",
                "key": ["id"],
                "target": {"table": "shop", "partition_key": "U#{id}"},
            }
        ],
    }


def test_a_cap_in_units_is_taken_as_given_and_a_share_from_the_provisioned_capacity():
    described = []

    def describe(name):
        described.append(name)
        return {
            "BillingModeSummary": {"BillingMode": "PROVISIONED"},
            "ProvisionedThroughput": {"WriteCapacityUnits": 400},
        }

    units = parse(_contract({"units_per_second": 250}))
    assert units.dynamo_tables["shop"].write_rate == WriteRate(units_per_second=250.0)
    assert table_caps(units, describe) == {"shop": 250.0}
    assert described == []  # no DescribeTable for a cap in units
    share = parse(_contract({"share_of_provisioned": 0.25}))
    assert table_caps(share, describe) == {"shop": 100.0}
    assert table_caps(parse(_contract(None)), describe) == {}


def test_a_share_of_an_on_demand_tables_capacity_is_refused_naming_the_path():
    share = parse(_contract({"share_of_provisioned": 0.5}))
    for desc in (
        {"BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}},
        {"ProvisionedThroughput": {"WriteCapacityUnits": 0}},
    ):
        with pytest.raises(SluiceError) as refused:
            table_caps(share, lambda name, d=desc: d)
        message = str(refused.value)
        assert message.startswith("$.target.tables.shop.write_rate.share_of_provisioned: ")
        assert "on-demand" in message and '{"units_per_second": 500}' in message


@pytest.mark.parametrize(
    ("write_rate", "extra", "expected"),
    [
        ({"units_per_second": 0}, {}, "$.target.tables.shop.write_rate.units_per_second: 0 is out of range: use 1 or more"),
        ({"share_of_provisioned": 0}, {}, "$.target.tables.shop.write_rate.share_of_provisioned: 0 is out of range: use a number above 0 and at most 1"),
        ({"share_of_provisioned": 1.5}, {}, "$.target.tables.shop.write_rate.share_of_provisioned: 1.5 is out of range: use a number above 0 and at most 1"),
        ({"units_per_second": "500"}, {}, "$.target.tables.shop.write_rate.units_per_second: must be a number, not the string '500': write it without quotes"),
        ({}, {}, '$.target.tables.shop.write_rate: {} is empty: give {"units_per_second": 500} or {"share_of_provisioned": 0.5}, or remove it'),
        ({"unit_per_second": 5}, {}, "$.target.tables.shop.write_rate: 'unit_per_second' was unexpected: remove it, or check its spelling (did you mean 'units_per_second'?)"),
        ({"units_per_second": 5, "share_of_provisioned": 0.5}, {}, "$.target.tables.shop.write_rate: give units_per_second or share_of_provisioned, not both"),
        ({"units_per_second": 5}, {"load": "import"}, '$.target.tables.shop.write_rate: an import uses no write capacity, so there is nothing to cap: remove it, or set load to "write"'),
    ],
)  # fmt: skip
def test_bad_write_rates_are_refused_with_their_path_and_fix(write_rate, extra, expected):
    with pytest.raises(ContractError) as refused:
        parse(_contract(write_rate, **extra))
    assert refused.value.problems == [expected]


# ---------------------------------------------------------------- wiring


def test_each_load_worker_knows_how_many_may_run_at_once(monkeypatch):
    for name in ("SLUICE_BUCKET", "SLUICE_MANIFEST_TABLE"):
        monkeypatch.setenv(name, "x")
    monkeypatch.delenv("SLUICE_LOAD_CONCURRENCY", raising=False)
    assert Settings.from_env().load_concurrency == 1
    monkeypatch.setenv("SLUICE_LOAD_CONCURRENCY", "25")
    assert Settings.from_env().load_concurrency == 25


def test_the_load_concurrency_the_workers_divide_by_is_the_one_sqs_enforces():
    doc = load_yaml(TEMPLATE)
    env = doc["Globals"]["Function"]["Environment"]["Variables"]
    load = doc["Resources"]["LoadFunction"]["Properties"]
    (source,) = [e["Properties"] for e in load["Events"].values() if e["Type"] == "SQS"]
    assert env["SLUICE_LOAD_CONCURRENCY"] == {"Ref": "LoadConcurrency"}
    assert source["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "LoadConcurrency"}
    # Locally, the parameter is the number of load consumers the runtime starts.
    for workers in CONSUMERS:
        stack = LocalStack(workers=workers, parameters={"LoadConcurrency": "10"})
        assert stack.params["LoadConcurrency"] == str(consumer_count(workers, "LoadFunction"))
    assert consumer_count("processes", "LoadFunction") == 2


@pytest.mark.parametrize(
    ("workers", "target_kind", "loads"),
    [
        ("threads", "mysql", 2),  # one loads while the other reads and encodes
        ("threads", "dynamodb", 1),  # a second only contends for the interpreter lock
        ("threads", None, 2),  # a stack that runs no stage of a known run
        ("processes", "dynamodb", 2),
        ("processes", "mysql", 2),
    ],
)
def test_a_local_run_into_dynamodb_with_threads_has_one_load_consumer(workers, target_kind, loads):
    stack = LocalStack(workers=workers, target_kind=target_kind)
    assert consumer_count(workers, "LoadFunction", target_kind) == loads
    assert stack.params["LoadConcurrency"] == str(loads)  # what the load workers divide by
    assert consumer_count(workers, "TransformFunction", target_kind) == 1


def test_the_dashboard_shows_write_units_and_time_waited_on_the_cap():
    body = load_yaml(TEMPLATE)["Resources"]["Dashboard"]["Properties"]["DashboardBody"]
    text = body["Fn::Sub"] if isinstance(body, dict) else body
    widgets = json.loads(text)["widgets"]
    metrics = [m for w in widgets for m in w["properties"]["metrics"]]
    named = {m[1] for m in metrics if m and m[0] == "Sluice"}
    assert {"WriteUnits", "RateWaitSeconds"} <= named


def test_auto_workers_are_processes_only_with_cores_to_spare(monkeypatch):
    from sluice.local import runtime

    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 2)
    assert runtime.choose_workers("auto") == "threads"
    assert LocalStack(workers="auto").workers == "threads"
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: runtime.PROCESS_WORKERS_FROM_CORES)
    assert runtime.choose_workers("auto") == "processes"
    assert runtime.choose_workers("threads") == "threads"
    with pytest.raises(ValueError, match="'auto', 'threads' or 'processes', not 'fibres'"):
        LocalStack(workers="fibres")
