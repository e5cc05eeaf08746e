"""Fault-injection fixtures: generated sources, runs taken to completion (with redrive where a
page lands in a dead-letter queue), exact comparison of source and target, and the report
of every case (faults injected, rows lost, rows duplicated) printed at the end of the session.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from sluice import aws, stages
from sluice.local.run import redrive_local, resume_local, run_local
from sluice.local.runtime import LocalStack, handler_output_to

from .inject import Faults

TABLE = "mixed"
DDB_TABLE = "faults_items"
CASE_ROWS = 3_000
CASE_PAGE_SIZE = 250  # 12 pages


# ---------------------------------------------------------------- process state


@pytest.fixture(autouse=True)
def _isolated_process_state(isolated_process_state) -> None:
    """Fresh per-process caches (as a cold start), and the environment left as found: the
    local runtime exports the template's variables into os.environ (tests/conftest.py)."""


# ---------------------------------------------------------------- sources


def create_mixed_table(conn, database: str, rows: int) -> None:
    """`database`.mixed with `rows` rows of mixed types (unsigned 64-bit, exact decimals,
    microsecond datetimes, utf8mb4 beyond the BMP, bytes, JSON, NULLs), generated in SQL from
    MariaDB's sequence engine."""
    with conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE `{database}`.`{TABLE}` ("
            "id INT UNSIGNED NOT NULL PRIMARY KEY, "
            "big BIGINT UNSIGNED NOT NULL, "
            "neg BIGINT NULL, "
            "amount DECIMAL(24,6) NULL, "
            "at DATETIME(6) NULL, "
            "day DATE NULL, "
            "name VARCHAR(80) CHARACTER SET utf8mb4 NOT NULL, "
            "note TEXT NULL, "
            "data VARBINARY(40) NULL, "
            "doc JSON NULL, "
            "flag TINYINT NOT NULL)"
        )
        cur.execute(
            f"INSERT INTO `{database}`.`{TABLE}` SELECT seq, "
            "18446744073709551615 - seq, "
            "IF(seq % 11 = 0, NULL, -seq * 1000003), "
            "IF(seq % 13 = 0, NULL, CAST(seq * 1234567.000001 AS DECIMAL(24,6))), "
            "IF(seq % 17 = 0, NULL, TIMESTAMP('2024-02-29 23:59:59') "
            "  + INTERVAL seq SECOND + INTERVAL seq % 1000000 MICROSECOND), "
            "IF(seq % 19 = 0, NULL, DATE('1970-01-01') + INTERVAL seq % 20000 DAY), "
            "CONCAT('row ', seq, ' naïve 名前 😀'), "
            "IF(seq % 5 = 0, NULL, REPEAT('tab\\there\\nline ', seq % 7)), "
            "IF(seq % 23 = 0, NULL, UNHEX(SHA2(seq, 256))), "
            "IF(seq % 29 = 0, NULL, JSON_OBJECT('n', seq, 'tags', JSON_ARRAY('a', seq % 3))), "
            f"seq % 2 FROM mysql.seq_1_to_{int(rows)}"
        )


@pytest.fixture(scope="session")
def session_source(open_connection, session_database) -> Callable[..., str]:
    """session_source(prefix, build) -> a new database, filled once by build(conn, database),
    that lives for the session: a source several cases read and none writes."""

    def make(prefix: str, build: Callable[..., None]) -> str:
        database = session_database(prefix)
        conn = open_connection()
        try:
            build(conn, database)
        finally:
            conn.close()
        return database

    return make


@pytest.fixture(scope="session")
def case_source(session_source) -> str:
    """The source database every case reads (read-only): `mixed`, CASE_ROWS rows."""
    return session_source("faults_src", partial(create_mixed_table, rows=CASE_ROWS))


def mysql_contract(source: str, target: str, page_size: int = CASE_PAGE_SIZE, table=TABLE) -> dict:
    return {
        "version": 1,
        "source": {"database": source},
        "target": {"kind": "mysql", "database": target},
        "defaults": {"page_size": page_size},
        "tables": [{"source": table, "key": ["id"], "target": {"table": table}}],
    }


def dynamodb_contract(source: str, page_size: int = CASE_PAGE_SIZE) -> dict:
    return {
        "version": 1,
        "source": {"database": source},
        "target": {
            "kind": "dynamodb",
            "tables": {DDB_TABLE: {"partition_key": "PK", "sort_key": "SK"}},
        },
        "defaults": {"page_size": page_size},
        "tables": [
            {
                "source": TABLE,
                "key": ["id"],
                "target": {"table": DDB_TABLE, "partition_key": "ROW#{id}", "sort_key": "ROW"},
            }
        ],
    }


# ---------------------------------------------------------------- runs


@dataclass
class Finished:
    """A run taken to completion: its last summary, and what it took."""

    run_id: str
    summary: dict
    redrives: int = 0  # redrive + resume rounds
    redriven: int = 0  # messages moved back from dead-letter queues
    retried: int = 0  # deliveries that failed and came back (SQS retries)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def run_to_completion(
    doc: dict,
    work: Path,
    *,
    max_rounds: int = 3,
    before_redrive: Callable[[dict], None] | None = None,
) -> Finished:
    """`sluice run --local`; while the run has not succeeded, `before_redrive(summary)` (the
    fix), then `sluice redrive --local` and `sluice resume --local`, at most `max_rounds`
    times. Each step starts with fresh process caches, as the CLI's own process would."""
    started = time.monotonic()
    path = work / "contract.json"
    path.write_text(json.dumps(doc))
    state = work / "state"
    quiet = {"as_json": True, "out": io.StringIO(), "err": io.StringIO()}
    summary = run_local(path, state_dir=state, timeout=600, **quiet)
    done = Finished(summary["run_id"], summary)
    done.retried = sum(summary["sqs_messages"]["failed"].values())
    while not summary["ok"]:
        if done.redrives >= max_rounds:
            raise AssertionError(
                f"run {done.run_id} not done after {done.redrives} redrives: {summary['verdict']}"
            )
        if before_redrive:
            before_redrive(summary)
        stages.reset_caches()
        moved = redrive_local(done.run_id, state_dir=state, out=io.StringIO())
        done.redriven += sum(r.moved for r in moved)
        stages.reset_caches()
        summary = resume_local(done.run_id, state_dir=state, timeout=600, **quiet)
        done.redrives += 1
        done.retried += sum(summary["sqs_messages"]["failed"].values())
    done.summary = summary
    done.seconds = time.monotonic() - started
    return done


def run_in_stack(
    doc: dict,
    *,
    after: Callable[[LocalStack, str], None] | None = None,
    read_items: bool = False,
    **stack_kwargs,
) -> Finished:
    """One execution in a LocalStack of this process, with `after(stack, run_id)` run while
    the stack still stands (the emulator's DynamoDB tables go with it): for cases that need
    the live stack. The run must succeed without a redrive. What the handlers print goes to
    a log file (as `sluice run --local` keeps it), named in the failure if the run fails."""
    started = time.monotonic()
    run_id = f"faults-{uuid.uuid4().hex[:8]}"
    log = Path(tempfile.gettempdir()) / "sluice-faults" / f"{run_id}.log"
    with handler_output_to(log), LocalStack(**stack_kwargs) as stack:
        arn = stack.start_execution({"contract": doc, "run_id": run_id, "poll_seconds": 1})
        desc = stack.wait(arn, timeout=600)
        assert desc["status"] == "SUCCEEDED", (desc.get("cause") or desc.get("error"), str(log))
        if after:
            after(stack, run_id)
        manifest = stages._manifest(stack.environment["SLUICE_MANIFEST_TABLE"])
        progress = {n: t.to_dict() for n, t in manifest.progress(run_id).items()}
        done = Finished(run_id, {"status": desc["status"], "ok": True, "tables": progress})
        done.retried = sum(stack.stats.failed.values())
        done.extra["timed_out"] = sum(stack.stats.timed_out.values())
        if read_items:
            done.extra["items"] = scan_items(DDB_TABLE)
    done.seconds = time.monotonic() - started
    return done


def scan_items(table: str) -> dict[tuple, dict]:
    """Every item of an emulated DynamoDB table, by (PK, SK), in wire form."""
    ddb, items, kwargs = aws.client("dynamodb"), {}, {"TableName": table}
    while True:
        resp = ddb.scan(**kwargs)
        for item in resp["Items"]:
            items[(item["PK"]["S"], item["SK"]["S"])] = item
        if "LastEvaluatedKey" not in resp:
            return items
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


_REFERENCES: dict[str, dict[tuple, dict]] = {}


@pytest.fixture
def dynamodb_reference(case_source, mysql_env) -> dict[tuple, dict]:
    """The items of a fault-free run of the case source into DynamoDB (one run a session)."""
    if case_source not in _REFERENCES:
        done = run_in_stack(dynamodb_contract(case_source), read_items=True)
        _REFERENCES[case_source] = done.extra["items"]
        stages.reset_caches()
        aws.reset_clients()
    return _REFERENCES[case_source]


# ---------------------------------------------------------------- outcomes


@dataclass
class Outcome:
    """Source against target after a run."""

    source_rows: int
    target_rows: int
    lost: int  # source rows (keys) the target lacks
    duplicated: int  # target rows beyond one per source row
    changed: int  # rows present on both sides whose values differ
    exact: bool


def hex_rows(conn, database: str, table: str) -> list[tuple[int, tuple]]:
    """Every row as the server sees it (each column's bytes in hex, NULL as 'NULL', which no
    hex string spells), by key: independent of Sluice's own readers."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        columns = [r[0] for r in cur.fetchall()]
        exprs = ", ".join(f"COALESCE(HEX(CAST(`{c}` AS BINARY)), 'NULL')" for c in columns)
        cur.execute(f"SELECT `id`, {exprs} FROM `{database}`.`{table}` ORDER BY `id`")
        return [(r[0], tuple(r[1:])) for r in cur.fetchall()]


@pytest.fixture
def mysql_outcome(connect) -> Callable[..., Outcome]:
    """mysql_outcome(source, target, table=TABLE) -> source and target tables compared row by
    row, every value's bytes."""
    conn = connect()

    def compare(source: str, target: str, table: str = TABLE) -> Outcome:
        src, dst = hex_rows(conn, source, table), hex_rows(conn, target, table)
        want = dict(src)
        matched = {k for k, _ in dst if k in want}
        changed = sum(1 for k, row in dst if k in want and row != want[k])
        return Outcome(
            source_rows=len(src),
            target_rows=len(dst),
            lost=len(want) - len(matched),
            duplicated=len(dst) - len(matched),
            changed=changed,
            exact=src == dst,
        )

    return compare


def dynamodb_outcome(reference: dict[tuple, dict], items: dict[tuple, dict], source_rows: int):
    """Items compared with a fault-free reference run's items, key by key, every attribute."""
    matched = [k for k in items if k in reference]
    changed = sum(1 for k in matched if items[k] != reference[k])
    return Outcome(
        source_rows=source_rows,
        target_rows=len(items),
        lost=len(reference) - len(matched),
        duplicated=len(items) - len(matched),
        changed=changed,
        exact=items == reference and len(items) == source_rows,
    )


# ---------------------------------------------------------------- the report


@dataclass
class CaseRow:
    case: str
    target: str
    faults: Faults
    outcome: Outcome
    retried: int
    redrives: int
    seconds: float


REPORT: list[CaseRow] = []


@pytest.fixture
def report() -> Callable[..., None]:
    """report(case, target, faults, outcome, finished) adds a row to the session's table and
    asserts what every case must show: faults were injected, nothing lost or duplicated,
    source and target equal."""

    def add(case: str, target: str, faults: Faults, outcome: Outcome, done: Finished) -> None:
        REPORT.append(
            CaseRow(case, target, faults, outcome, done.retried, done.redrives, done.seconds)
        )
        assert faults.total > 0, f"{case}: no fault was injected, so the case proves nothing"
        assert (outcome.lost, outcome.duplicated, outcome.changed) == (0, 0, 0), outcome
        assert outcome.exact, outcome
        assert outcome.target_rows == outcome.source_rows, outcome

    return add


def render_report(rows: list[CaseRow]) -> list[str]:
    head = (
        f"{'case':<52} {'target':<8} {'faults':>6} {'retries':>7} {'redrives':>8} "
        f"{'rows':>7} {'lost':>4} {'dup':>4} {'exact':>5} {'s':>5}  faults injected"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        o = r.outcome
        lines.append(
            f"{r.case:<52} {r.target:<8} {r.faults.total:>6,} {r.retried:>7} {r.redrives:>8} "
            f"{o.source_rows:>7,} {o.lost:>4} {o.duplicated:>4} "
            f"{'yes' if o.exact else 'NO':>5} {r.seconds:>5.0f}  {r.faults}"
        )
    total = sum(r.faults.total for r in rows)
    lines.append(
        f"{len(rows)} cases, {total:,} faults injected, "
        f"{sum(r.outcome.lost for r in rows)} rows lost, "
        f"{sum(r.outcome.duplicated for r in rows)} rows duplicated"
    )
    return lines


def pytest_terminal_summary(terminalreporter) -> None:
    if not REPORT:
        return
    terminalreporter.section("fault injection: faults injected, rows lost, rows duplicated")
    for line in render_report(REPORT):
        terminalreporter.write_line(line)
