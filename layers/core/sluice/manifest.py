"""The run manifest in DynamoDB: runs, tables and pages, whose status only moves forward."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from boto3.dynamodb.conditions import Key

from .staging import PageRef

STATUSES = ("pending", "extracted", "transformed", "loaded")
RANK = {s: i for i, s in enumerate(STATUSES)}
# Off the line: a page that ran out of retries is "failed"; `sluice redrive` sends its message
# back and marks it "redriven" (waiting for its retry). Either may move on to any status.
FAILED, REDRIVEN = "failed", "redriven"
COUNT_FIELD = {"extracted": "extracted", "transformed": "transformed", "loaded": "loaded"}


def _pk(run_id: str) -> str:
    return f"RUN#{run_id}"


def _page_sk(ref: PageRef) -> str:
    return f"PAGE#{ref.table}#{ref.page:06d}"


@dataclass(slots=True)
class TableProgress:
    """One source table's pages and rows.

    On the import way (`load` "import") a page is done once transformed: its items wait in S3
    for the one ImportTable of its target table, and its rows count as loaded only when that
    import has COMPLETED with every item imported and no error (`import_status`).
    """

    table: str
    target_table: str = ""
    path: str = "lambda"
    load: str = "write"
    import_status: str | None = None
    pages: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    extracted: int = 0
    transformed: int = 0
    rejected: int = 0
    loaded: int = 0
    write_units: int = 0  # DynamoDB write capacity units sent (a write_rate counts these)
    rate_wait_ms: int = 0  # time pages were held back by the write_rate
    failed_pages: list[dict] = field(default_factory=list)
    # Pages not at their last stage and with no error: {"page", "status"} (in page order).
    unfinished_pages: list[dict] = field(default_factory=list)
    last_change: float | None = None  # the latest update of any of its pages
    first_started: float | None = None
    last_loaded: float | None = None

    @property
    def pages_loaded(self) -> int:
        """Pages at their last stage: loaded, or on the import way transformed."""
        done = self.status_counts.get("loaded", 0)
        if self.load == "import":
            done += self.status_counts.get("transformed", 0)
        return done

    @property
    def done(self) -> bool:
        return self.pages_loaded == self.pages

    @property
    def seconds(self) -> float:
        if self.first_started is None or self.last_loaded is None:
            return 0.0
        return max(0.0, self.last_loaded - self.first_started)

    @property
    def write_units_per_second(self) -> float | None:
        """The effective write rate, from the first page started to the last loaded."""
        if not self.write_units or not self.seconds:
            return None
        return round(self.write_units / self.seconds, 1)

    def to_dict(self) -> dict:
        return {
            "table": self.table,
            "target_table": self.target_table,
            "path": self.path,
            "load": self.load,
            "import_status": self.import_status,
            "pages": self.pages,
            "pages_loaded": self.pages_loaded,
            "extracted": self.extracted,
            "transformed": self.transformed,
            "rejected": self.rejected,
            "loaded": self.loaded,
            "seconds": round(self.seconds, 3),
            "write_units": self.write_units,
            "write_units_per_second": self.write_units_per_second,
            "rate_wait_seconds": round(self.rate_wait_ms / 1000, 3),
            "failed_pages": self.failed_pages,
        }


class Manifest:
    """Reads and writes one run's items; `table` is a boto3 DynamoDB Table resource."""

    def __init__(self, table):
        self.table = table

    # ---------------------------------------------------------------- plan
    def record_plan(
        self, run_id: str, run: dict, tables: Iterable[dict], pages: Iterable[tuple[PageRef, dict]]
    ) -> None:
        now = time.time()
        with self.table.batch_writer() as w:
            w.put_item(
                Item={
                    "pk": _pk(run_id),
                    "sk": "RUN",
                    "status": "running",
                    "started_at": _num(now),
                    **run,
                }
            )
            for t in tables:
                w.put_item(Item={"pk": _pk(run_id), "sk": f"TABLE#{t['table']}", **t})
            for ref, rng in pages:
                w.put_item(
                    Item={
                        "pk": _pk(run_id),
                        "sk": _page_sk(ref),
                        "table": ref.table,
                        "page": ref.page,
                        "status": "pending",
                        "range": json.dumps(rng),
                        "attempts": 0,
                    }
                )

    # ---------------------------------------------------------------- stages
    def advance(
        self,
        ref: PageRef,
        status: str,
        counts: dict[str, int | str],
        *,
        started_at: float | None = None,
    ) -> bool:
        """Move a page forward to `status` with its counts; False if it was already further.

        Counts are numbers, or text for checksums (`extract_sum`, `transform_sum`,
        `loaded_sum`: see sluice.checksum). Re-running a stage sets the same counts again
        (SET, never ADD), so duplicates of a message change nothing.
        """
        # A failed page may move on again once redriven; nothing moves a page backwards.
        allowed = [s for s in STATUSES if RANK[s] <= RANK[status]] + [FAILED, REDRIVEN]
        names = {"#s": "status"}
        values = {":new": status, ":now": _num(time.time())}
        sets = ["#s = :new", "updated_at = :now", f"{status}_at = :now"]
        for i, (k, v) in enumerate(counts.items()):
            names[f"#c{i}"] = k
            values[f":c{i}"] = v if isinstance(v, str) else int(v)
            sets.append(f"#c{i} = :c{i}")
        if started_at is not None:
            values[":started"] = _num(started_at)
            sets.append("started_at = if_not_exists(started_at, :started)")
        for i, s in enumerate(allowed):
            values[f":a{i}"] = s
        cond = "#s IN (" + ", ".join(f":a{i}" for i in range(len(allowed))) + ")"
        sets.append("last_error = :none")
        values[":none"] = None
        try:
            self.table.update_item(
                Key={"pk": _pk(ref.run_id), "sk": _page_sk(ref)},
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=cond,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            return True
        except self.table.meta.client.exceptions.ConditionalCheckFailedException:
            return False

    def record_failure(self, ref: PageRef, stage: str, error: str, *, final: bool) -> None:
        """Note a failed attempt; `final` (no retries left) marks the page failed."""
        sets = "SET last_error = :e, failed_stage = :st, updated_at = :now ADD attempts :one"
        values = {":e": error[:2000], ":st": stage, ":now": _num(time.time()), ":one": 1}
        names = None
        if final:
            sets = "SET last_error = :e, failed_stage = :st, updated_at = :now, #s = :failed ADD attempts :one"
            values[":failed"] = FAILED
            names = {"#s": "status"}
        kwargs = {"ExpressionAttributeNames": names} if names else {}
        try:
            self.table.update_item(
                Key={"pk": _pk(ref.run_id), "sk": _page_sk(ref)},
                UpdateExpression=sets,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=values,
                **kwargs,
            )
        except self.table.meta.client.exceptions.ConditionalCheckFailedException:
            # A message for a page the plan never recorded (unknown table, other run): an
            # update would invent a page item without table or status, which breaks progress.
            return

    def mark_redriven(self, ref: PageRef, stage: str) -> bool:
        """A failed page's message went back to its stage's queue: it waits for that retry
        (the run's progress no longer counts it failed). False when the page was not failed
        (already moved on, or never planned): nothing changes then."""
        try:
            self.table.update_item(
                Key={"pk": _pk(ref.run_id), "sk": _page_sk(ref)},
                UpdateExpression="SET #s = :r, redriven_at = :now, redriven_stage = :st "
                "ADD redrives :one",
                ConditionExpression="#s = :failed",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":r": REDRIVEN,
                    ":failed": FAILED,
                    ":now": _num(time.time()),
                    ":st": stage,
                    ":one": 1,
                },
            )
            return True
        except self.table.meta.client.exceptions.ConditionalCheckFailedException:
            return False

    def set_run(self, run_id: str, **fields) -> None:
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        values = {f":v{i}": v for i, v in enumerate(fields.values())}
        self.table.update_item(
            Key={"pk": _pk(run_id), "sk": "RUN"},
            UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    # ---------------------------------------------------------------- imports
    def record_import(self, run_id: str, target_table: str, **fields) -> None:
        """Set fields of a target table's import item (status, ARN, counts...): SET only, so
        writing the same description twice changes nothing."""
        fields = {"target_table": target_table, "updated_at": _num(time.time()), **fields}
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        values = {f":v{i}": _plain_number(v) for i, v in enumerate(fields.values())}
        self.table.update_item(
            Key={"pk": _pk(run_id), "sk": _import_sk(target_table)},
            UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def imports(self, run_id: str) -> dict[str, dict]:
        """Each import-way target table's import item, by table name (numbers as int)."""
        return {
            it["target_table"]: {k: _from_number(v) for k, v in it.items() if k not in ("pk", "sk")}
            for it in self.items(run_id)
            if it["sk"].startswith("IMPORT#")
        }

    # ---------------------------------------------------------------- reads
    def items(self, run_id: str) -> list[dict]:
        out, kwargs = [], {"KeyConditionExpression": Key("pk").eq(_pk(run_id))}
        while True:
            resp = self.table.query(**kwargs)
            out.extend(resp["Items"])
            if "LastEvaluatedKey" not in resp:
                return out
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def run(self, run_id: str) -> dict | None:
        return self.table.get_item(Key={"pk": _pk(run_id), "sk": "RUN"}).get("Item")

    def page(self, ref: PageRef) -> dict | None:
        """A page's item as it is now (a consistent read: what the last stage recorded)."""
        return self.table.get_item(
            Key={"pk": _pk(ref.run_id), "sk": _page_sk(ref)}, ConsistentRead=True
        ).get("Item")

    def progress(self, run_id: str) -> dict[str, TableProgress]:
        tables: dict[str, TableProgress] = {}
        imports: dict[str, dict] = {}
        waiting: dict[str, list[tuple[int, str]]] = {}
        for it in self.items(run_id):
            sk = it["sk"]
            if sk.startswith("IMPORT#"):
                imports[it["target_table"]] = it
            elif sk.startswith("TABLE#"):
                t = tables.setdefault(it["table"], TableProgress(it["table"]))
                t.pages = int(it["pages"])
                t.target_table = it.get("target_table", "")
                t.path = it.get("path", "lambda")
                t.load = it.get("load", "write")
            elif sk.startswith("PAGE#"):
                t = tables.setdefault(it["table"], TableProgress(it["table"]))
                st = it["status"]
                t.status_counts[st] = t.status_counts.get(st, 0) + 1
                t.extracted += int(it.get("extracted", 0))
                t.transformed += int(it.get("transformed", 0))
                t.rejected += int(it.get("rejected", 0)) + int(it.get("load_rejected", 0))
                t.loaded += int(it.get("loaded", 0))
                t.write_units += int(it.get("write_units", 0))
                t.rate_wait_ms += int(it.get("rate_wait_ms", 0))
                if it.get("started_at") is not None:
                    s = float(it["started_at"])
                    t.first_started = s if t.first_started is None else min(t.first_started, s)
                if st == "loaded" and it.get("loaded_at") is not None:
                    e = float(it["loaded_at"])
                    t.last_loaded = e if t.last_loaded is None else max(t.last_loaded, e)
                if it.get("updated_at") is not None:
                    u = float(it["updated_at"])
                    t.last_change = u if t.last_change is None else max(t.last_change, u)
                if st != FAILED and not it.get("last_error"):
                    waiting.setdefault(it["table"], []).append((int(it["page"]), st))
                if st in (FAILED, REDRIVEN) or it.get("last_error"):
                    t.failed_pages.append(
                        {
                            "page": int(it["page"]),
                            "status": st,
                            "stage": it.get("failed_stage"),
                            "error": it.get("last_error"),
                            "attempts": int(it.get("attempts", 0)),
                        }
                    )
        for t in tables.values():
            if t.load == "import":
                _apply_import(t, imports.get(t.target_table))
            # (TABLE# items sort after PAGE# ones: a page's last stage is known only now.)
            last = ("loaded", "transformed") if t.load == "import" else ("loaded",)
            t.unfinished_pages = [
                {"page": n, "status": st}
                for n, st in sorted(waiting.get(t.table, []))
                if st not in last
            ]
        return tables


def import_succeeded(imp: dict | None) -> bool:
    """An import brought every staged item in: COMPLETED, no error, imported = expected."""
    return bool(
        imp
        and imp.get("status") == "COMPLETED"
        and int(imp.get("errors", 0)) == 0
        and int(imp.get("imported", -1)) == int(imp.get("expected", -2))
    )


def _apply_import(t: TableProgress, imp: dict | None) -> None:
    """An import-way table's rows are loaded once its target's import succeeded, not before."""
    t.import_status = imp.get("status") if imp else None
    t.loaded = t.transformed if import_succeeded(imp) else 0
    if imp and imp.get("ended_at") is not None and t.loaded:
        t.last_loaded = float(imp["ended_at"])


def _import_sk(target_table: str) -> str:
    return f"IMPORT#{target_table}"


def _plain_number(v):
    """Floats become Decimal (the DynamoDB resource refuses floats); the rest as given."""
    return _num(v) if isinstance(v, float) else v


def _from_number(v):
    from decimal import Decimal

    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def _num(x: float):
    from decimal import Decimal

    return Decimal(str(round(x, 6)))
