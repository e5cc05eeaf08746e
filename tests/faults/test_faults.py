"""Each fault a deployed run meets, injected into a local run that is then taken to completion
(SQS redelivery, or a redrive and resume where a page lands in a dead-letter queue): the
target ends exactly equal to the source, with no row lost and none duplicated."""

from __future__ import annotations

import pytest
from sluice import stages

from .conftest import (
    CASE_ROWS,
    TABLE,
    dynamodb_contract,
    dynamodb_outcome,
    mysql_contract,
    run_in_stack,
    run_to_completion,
)
from .inject import (
    Duplicates,
    Faults,
    FirstCalls,
    ReadKiller,
    crash_extract_mid_page,
    crash_load_after_half,
    crash_transform,
    flaky_batch_writes,
    time_out_after_load,
)

pytestmark = [
    pytest.mark.mysql,
    pytest.mark.slow,
    # pymysql's finalizers on a connection the server KILLed (collected whenever GC runs).
    pytest.mark.filterwarnings(
        r"ignore:Exception ignored in. <function (MySQLResult\.__del__|SSCursor\.close)"
        ":pytest.PytestUnraisableExceptionWarning"
    ),
]

# A crash on each page's first delivery (SQS retries it), or on every delivery of one page (it
# lands in the DLQ and needs a redrive).
DELIVERIES = pytest.mark.parametrize(
    ("how", "times", "pages"),
    [("each page's first delivery", 1, None), ("one page, every delivery: DLQ", 3, 1)],
)


def _pages(done) -> int:
    return sum(t["pages"] for t in done.summary["tables"].values())


# ---------------------------------------------------------------- extract


@DELIVERIES
def test_extract_crash_mid_page(
    how,
    times,
    pages,
    case_source,
    new_database,
    mysql_env,
    mysql_outcome,
    monkeypatch,
    tmp_path,
    report,
):
    target = new_database("fx_dst")
    faults = Faults()
    crash_extract_mid_page(monkeypatch, faults, FirstCalls(times=times, pages=pages))

    done = run_to_completion(mysql_contract(case_source, target), tmp_path)

    expected = times * (pages or _pages(done))
    assert faults.counts["extract crash"] == expected
    assert done.redrives == (1 if times >= 3 else 0)
    outcome = mysql_outcome(case_source, target)
    report(f"extract crash mid-page ({how})", "mysql", faults, outcome, done)


# ---------------------------------------------------------------- transform


def test_transform_crash_mysql(
    case_source, new_database, mysql_env, mysql_outcome, monkeypatch, tmp_path, report
):
    target = new_database("fx_dst")
    faults = Faults()
    crash_transform(monkeypatch, faults, FirstCalls(times=1), "mysql")

    done = run_to_completion(mysql_contract(case_source, target), tmp_path)

    assert faults.counts["transform crash"] == _pages(done)
    report("transform crash", "mysql", faults, mysql_outcome(case_source, target), done)


def test_transform_crash_dynamodb(case_source, dynamodb_reference, mysql_env, monkeypatch, report):
    faults = Faults()
    crash_transform(monkeypatch, faults, FirstCalls(times=1), "dynamodb")

    done = run_in_stack(dynamodb_contract(case_source), read_items=True)

    assert faults.counts["transform crash"] == _pages(done)
    outcome = dynamodb_outcome(dynamodb_reference, done.extra["items"], CASE_ROWS)
    report("transform crash", "dynamodb", faults, outcome, done)


# ---------------------------------------------------------------- load


@DELIVERIES
def test_load_crash_after_half_a_batch_mysql(
    how,
    times,
    pages,
    case_source,
    new_database,
    mysql_env,
    mysql_outcome,
    monkeypatch,
    tmp_path,
    report,
):
    target = new_database("fx_dst")
    faults = Faults()
    crash_load_after_half(monkeypatch, faults, FirstCalls(times=times, pages=pages), "mysql")

    done = run_to_completion(mysql_contract(case_source, target), tmp_path)

    assert faults.counts["load crash after half"] == times * (pages or _pages(done))
    assert done.redrives == (1 if times >= 3 else 0)
    outcome = mysql_outcome(case_source, target)
    report(f"load crash after half ({how})", "mysql", faults, outcome, done)


def test_load_crash_after_half_a_batch_dynamodb(
    case_source, dynamodb_reference, mysql_env, monkeypatch, report
):
    faults = Faults()
    crash_load_after_half(monkeypatch, faults, FirstCalls(times=1), "dynamodb")

    done = run_in_stack(dynamodb_contract(case_source), read_items=True)

    assert faults.counts["load crash after half"] == _pages(done)
    outcome = dynamodb_outcome(dynamodb_reference, done.extra["items"], CASE_ROWS)
    report("load crash after half", "dynamodb", faults, outcome, done)


# ---------------------------------------------------------------- duplicate S3 events

COUNTS = ("pages", "pages_loaded", "extracted", "transformed", "rejected", "loaded")


def _counts(stack, run_id: str) -> dict:
    manifest = stages._manifest(stack.environment["SLUICE_MANIFEST_TABLE"])
    return {
        name: {k: t.to_dict()[k] for k in COUNTS} for name, t in manifest.progress(run_id).items()
    }


@pytest.mark.parametrize("kind", ["mysql", "dynamodb"])
def test_same_s3_event_delivered_twice(
    kind,
    case_source,
    new_database,
    mysql_env,
    mysql_outcome,
    wait_until_queues_empty,
    monkeypatch,
    request,
    report,
):
    """Every S3 notification to the transform and load queues arrives twice during the run,
    and all of them once more after it succeeded: counts and target unchanged."""
    # The reference run first: its notifications are no part of this case (redelivered
    # after its stack is gone, they would name a run whose staged objects no longer exist).
    reference = request.getfixturevalue("dynamodb_reference") if kind == "dynamodb" else None
    faults = Faults()
    dups = Duplicates(faults, FirstCalls(times=1))
    dups.install(monkeypatch)
    seen: dict = {}

    def redeliver(stack, run_id):
        wait_until_queues_empty(stack, timeout=120)
        seen["before"] = _counts(stack, run_id)
        if kind == "dynamodb":
            from .conftest import scan_items

            seen["items_before"] = scan_items("faults_items")
        else:
            seen["rows_before"] = mysql_outcome(case_source, target)
        seen["again"] = dups.deliver_all_again()
        wait_until_queues_empty(stack, timeout=120)
        seen["after"] = _counts(stack, run_id)

    if kind == "mysql":
        target = new_database("fx_dst")
        done = run_in_stack(mysql_contract(case_source, target), after=redeliver)
        outcome = mysql_outcome(case_source, target)
        assert outcome == seen["rows_before"]
    else:
        done = run_in_stack(dynamodb_contract(case_source), after=redeliver, read_items=True)
        outcome = dynamodb_outcome(reference, done.extra["items"], CASE_ROWS)
        assert done.extra["items"] == seen["items_before"]

    # At least each page's extracted and transformed objects' notifications (a transform run
    # twice stages its object twice, and each time S3 notifies anew).
    assert seen["again"] >= 2 * _pages(done)
    assert seen["after"] == seen["before"]
    assert seen["after"][TABLE]["loaded"] == CASE_ROWS
    report("same S3 event delivered twice", kind, faults, outcome, done)


# ---------------------------------------------------------------- DynamoDB answers


def test_dynamodb_unprocessed_items_and_throttling(
    case_source, dynamodb_reference, mysql_env, monkeypatch, report
):
    faults = Faults()
    flaky_batch_writes(monkeypatch, faults, seed=6, throttle=0.2, unprocessed=0.25)

    done = run_in_stack(dynamodb_contract(case_source), read_items=True)

    assert faults.counts["DynamoDB throttled"] > 0
    assert faults.counts["DynamoDB items unprocessed"] > 0
    outcome = dynamodb_outcome(dynamodb_reference, done.extra["items"], CASE_ROWS)
    report("UnprocessedItems and throttling", "dynamodb", faults, outcome, done)


# ---------------------------------------------------------------- MySQL KILL mid-read

WIDE_ROWS, WIDE_PAGE = 40_000, 20_000  # pages of ~20 MB: far more than the sockets buffer


def _create_wide_table(conn, database: str) -> None:
    with conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE `{database}`.wide (id INT PRIMARY KEY, "
            "payload VARCHAR(1000) NOT NULL, n BIGINT NULL)"
        )
        cur.execute(
            f"INSERT INTO `{database}`.wide SELECT seq, REPEAT(SHA2(seq, 256), 15), "
            f"IF(seq % 7 = 0, NULL, seq * 1000003) FROM mysql.seq_1_to_{WIDE_ROWS}"
        )


@pytest.fixture(scope="module")
def wide_source(session_source) -> str:
    return session_source("faults_wide", _create_wide_table)


def test_mysql_connection_killed_during_a_read(
    wide_source, new_database, connect, mysql_env, mysql_outcome, monkeypatch, tmp_path, report
):
    target = new_database("fx_dst")
    faults = Faults()
    killer = ReadKiller(connect(), wide_source, "wide", pages=2, faults=faults)
    killer.install(monkeypatch)
    try:
        doc = mysql_contract(wide_source, target, page_size=WIDE_PAGE, table="wide")
        done = run_to_completion(doc, tmp_path)
    finally:
        killer.stop()

    # The connection KILLed was the one paused mid-page, each time, and its read failed.
    assert killer.errors == []
    assert killer.killed_ids == killer.reader_ids
    assert len(killer.killed_ids) == 2
    assert len(killer.interrupted) == 2, killer.interrupted
    assert all("Lost connection" in e for e in killer.interrupted), killer.interrupted
    outcome = mysql_outcome(wide_source, target, table="wide")
    report("MySQL KILL during a read", "mysql", faults, outcome, done)


# ---------------------------------------------------------------- handler timeout


def test_load_handler_timeout(
    case_source, new_database, mysql_env, mysql_outcome, monkeypatch, report
):
    """The load function's timeout is 2 s here; two pages' loads write their rows, then run
    past it. The local runtime fails those invocations' whole batches, as Lambda does."""
    target = new_database("fx_dst")
    faults = Faults()
    time_out_after_load(monkeypatch, faults, FirstCalls(times=1, pages=2), seconds=2)

    done = run_in_stack(mysql_contract(case_source, target), timeouts={"LoadFunction": 2})

    assert faults.counts["handler timeout"] == 2
    assert done.extra["timed_out"] >= 1  # both pages may have been in one batch
    outcome = mysql_outcome(case_source, target)
    report("handler timeout (load)", "mysql", faults, outcome, done)


# ---------------------------------------------------------------- poison row


def test_poison_row_fixed_then_redriven(
    case_source, new_database, connect, mysql_env, mysql_outcome, tmp_path, report
):
    """A row the target refuses outright (a trigger SIGNALs): its page fails every delivery
    and lands in the load DLQ; the cause is fixed, the page redriven, the run resumed."""
    target = new_database("fx_dst")
    admin = connect()
    poison = CASE_ROWS // 2
    with admin.cursor() as cur:
        cur.execute(f"CREATE TABLE `{target}`.`{TABLE}` LIKE `{case_source}`.`{TABLE}`")
        cur.execute(
            f"CREATE TRIGGER `{target}`.poison BEFORE INSERT ON `{target}`.`{TABLE}` "
            f"FOR EACH ROW BEGIN IF NEW.id = {poison} THEN "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poison row refused by a trigger'; "
            "END IF; END"
        )
    faults = Faults()

    def fix(summary):
        (failed,) = summary["tables"][TABLE]["failed_pages"]
        assert (failed["status"], failed["stage"]) == ("failed", "load")
        assert "poison row refused" in failed["error"]
        faults.add("poison row", failed["attempts"])
        with admin.cursor() as cur:
            cur.execute(f"DROP TRIGGER `{target}`.poison")

    done = run_to_completion(mysql_contract(case_source, target), tmp_path, before_redrive=fix)

    assert done.redrives == 1
    assert done.redriven == 1
    report(
        "poison row (fix, redrive, resume)",
        "mysql",
        faults,
        mysql_outcome(case_source, target),
        done,
    )
