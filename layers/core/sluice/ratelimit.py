"""DynamoDB write-rate caps: the token bucket each worker spends from, and how a table's cap is
resolved and shared out among the workers that write it at once.

A cap (`$.target.tables.<name>.write_rate`) is write capacity units a second for all of a run's
workers together. The plan resolves it once (a share of provisioned capacity is read with
DescribeTable) and splits it between the paths writing the table at the same time: the Lambda
load workers as one group, and each bulk job. A group's share is divided again by how many of
its workers can run at once (the load function's maximum concurrency, a job's parallel tasks),
so every worker holds a bucket of rate cap / groups / workers, and their sum never exceeds the
cap, however the work is spread among them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .errors import SluiceError


def rates_key(run_id: str) -> str:
    """Where the plan writes each capped table's rate and its split between paths."""
    return f"runs/{run_id}/plan/write-rates.json"


class TokenBucket:
    """A worker's share of a table's write capacity: `rate` units a second, bursts of at most
    one second's worth. A rate of 0 or less takes nothing and never waits.

    `full` starts it with a second's worth in hand; a worker that may be replaced at any time (a
    Lambda instance) starts empty, so a new one cannot add a burst the cap did not allow. Safe to
    share between threads: takers queue on a lock while one of them sleeps, so the sleeps of a
    page's threads never overlap and their sum is the time the cap held the page back.
    """

    def __init__(self, rate: float, clock=time.monotonic, sleep=time.sleep, *, full: bool = True):
        self.rate = float(rate)
        self.capacity = max(self.rate, 1.0)
        self.tokens = self.capacity if full else 0.0
        self.clock, self.sleep = clock, sleep
        self.at = clock()
        self._lock = threading.Lock()

    def take(self, units: float) -> float:
        """Wait until `units` may be spent, spend them; returns the seconds slept."""
        if self.rate <= 0:
            return 0.0
        slept = 0.0
        with self._lock:
            while True:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
                self.at = now
                # A request larger than a burst waits for a full bucket, then overdraws it.
                need = min(units, self.capacity)
                # (a hair short counts as there: a wait too small to move the clock never ends)
                if self.tokens >= need - 1e-9:
                    self.tokens -= units
                    return slept
                wait = (need - self.tokens) / self.rate
                self.sleep(wait)
                slept += wait


def write_units(line: bytes) -> int:
    """Write capacity units of one item: one per started KB (its wire JSON is near its size,
    a little over it, so a cap errs on the safe side)."""
    return max(1, (len(line) + 1023) // 1024)


@dataclass
class Meter:
    """One page's writes: the units sent (every attempt, as the cap counts them) and the seconds
    it waited on its worker's bucket (None: no cap, only counting)."""

    bucket: TokenBucket | None = None
    units: int = 0
    waited: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def max_request_units(self) -> float | None:
        """The most units one request may carry: a second of the worker's share, so a request
        never has to overdraw the bucket (None: no limit)."""
        if self.bucket is None or self.bucket.rate <= 0:
            return None
        return self.bucket.capacity

    def pay(self, lines: Sequence[bytes]) -> None:
        units = sum(write_units(ln) for ln in lines)
        waited = self.bucket.take(units) if self.bucket is not None else 0.0
        with self._lock:
            self.units += units
            self.waited += waited

    def counts(self) -> dict[str, int]:
        """The manifest's fields for this page."""
        return {"write_units": self.units, "rate_wait_ms": round(self.waited * 1000)}


# ---------------------------------------------------------------- the plan's side


def table_caps(contract, describe: Callable[[str], dict]) -> dict[str, float]:
    """Units a second each capped DynamoDB target table allows; `describe(name)` returns
    DescribeTable's Table, read only for a share of provisioned capacity."""
    caps = {}
    for name, table in contract.dynamo_tables.items():
        rate = table.write_rate
        if rate is None:
            continue
        if rate.units_per_second is not None:
            caps[name] = float(rate.units_per_second)
            continue
        desc = describe(name)
        mode = desc.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        wcu = int(desc.get("ProvisionedThroughput", {}).get("WriteCapacityUnits") or 0)
        where = f"$.target.tables.{name}.write_rate.share_of_provisioned"
        if mode == "PAY_PER_REQUEST" or wcu <= 0:
            raise SluiceError(
                f"{where}: DynamoDB table {name} is on-demand, with no provisioned write capacity "
                'to share: give the cap in units instead, as in {"units_per_second": 500}, or '
                "remove write_rate"
            )
        caps[name] = max(1.0, wcu * rate.share_of_provisioned)
    return caps


def split(caps: dict[str, float], tables: Sequence[dict]) -> dict[str, dict]:
    """Each capped table's rate shared equally among the groups that write it at once: the
    Lambda load workers (one group, if any table on the Lambda path writes it) and each bulk
    job. `tables` is the plan's list (table, target_table, path, pages). The Lambda share is
    there even when no page takes that path (a page is never written uncapped)."""
    out = {}
    for name, cap in caps.items():
        writers = [t for t in tables if t["target_table"] == name and t["pages"]]
        lambda_path = any(t["path"] == "lambda" for t in writers)
        bulk_tables = [t["table"] for t in writers if t["path"] == "bulk"]
        share = cap / max(1, int(lambda_path) + len(bulk_tables))
        out[name] = {
            "units_per_second": cap,
            "lambda": share,
            "bulk": dict.fromkeys(bulk_tables, share),
        }
    return out
