"""MySQL failures mid-page on the real server: a killed connection, a lock wait timeout, a
"restart" (every connection of the run killed), a statement timeout, bounded retries, and
the cap on connections to the source.

Each test drives the real stages (plan, extract, transform, load) in-process over the local
stack's moto S3 and manifest, against the shared MariaDB. Nothing here restarts the server:
a restart is what its clients see of it, every connection gone at once, made with KILL.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import uuid

import pymysql
import pytest
from sluice import db, retry, stages, staging
from sluice.errors import PageError
from sluice.local.run import run_local
from sluice.staging import PageRef
from sluice.targets import mysql as mysql_target

from .test_local_runtime import DEMO_KEYS

# Wide rows, so that a page is far larger than what the sockets between the server and the
# reader can buffer (a few MB): a connection killed after the first chunk really is killed
# mid-page, with most of the page not yet sent.
WIDE_ROWS = 24_000
PAYLOAD_CHARS = 960  # 15 x a 64-character SHA-256, different in every row


@dataclasses.dataclass
class Source:
    database: str
    user: str
    url: str


def _create_account(admin, database: str, prefix: str) -> tuple[str, str]:
    user, password = f"{prefix}{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with admin.cursor() as cur:
        try:
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        except pymysql.err.OperationalError as exc:
            pytest.skip(f"the test server's account cannot create users: {exc.args[-1]}")
        cur.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'%'")
    return user, password


@pytest.fixture
def source(connect, new_database, mysql_info, monkeypatch):
    """make(rows) -> a source database with table `wide`, read through an account of its own,
    so that the run's connections to the source are exactly that account's."""
    admin = connect()
    made: list[str] = []

    def make(rows: int = WIDE_ROWS) -> Source:
        database = new_database("res")
        with admin.cursor() as cur:
            cur.execute(
                f"CREATE TABLE `{database}`.wide (id INT PRIMARY KEY, "
                "payload VARCHAR(1000) NOT NULL, n BIGINT NULL)"
            )
            cur.execute(
                f"INSERT INTO `{database}`.wide SELECT seq, REPEAT(SHA2(seq, 256), 15), "
                f"IF(seq % 7 = 0, NULL, seq * 1000003) FROM mysql.seq_1_to_{rows}"
            )
        user, password = _create_account(admin, database, "sluice_s_")
        made.append(user)
        url = f"mysql://{user}:{password}@{mysql_info.host}:{mysql_info.port}"
        monkeypatch.setenv("SLUICE_SOURCE_URL", url)
        return Source(database, user, url)

    yield make
    with admin.cursor() as cur:
        for user in made:
            cur.execute(f"DROP USER '{user}'@'%'")


def _plan(database: str, target_db: str, page_size: int) -> tuple[str, list[dict]]:
    """Plan a run of `wide` into a MySQL target: (run id, its page messages)."""
    ctx = stages.context()
    contract = {
        "version": 1,
        "source": {"database": database},
        "target": {"kind": "mysql", "database": target_db},
        "defaults": {"page_size": page_size},
        "tables": [{"source": "wide", "key": ["id"], "target": {"table": "wide"}}],
    }
    out = stages.plan_run(ctx, {"contract": contract})
    batches = json.loads(ctx.get(out["batches_key"]))
    messages = [json.loads(e["MessageBody"]) for b in batches for e in b["Entries"]]
    return out["run_id"], messages


def _source_rows(conn, database: str, lo: int = 0, hi: int | None = None) -> dict[str, list]:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT id, payload, n FROM `{database}`.wide WHERE id > %s AND id <= %s ORDER BY id",
            (lo, hi if hi is not None else 2**31),
        )
        rows = cur.fetchall()
    return {"id": [r[0] for r in rows], "payload": [r[1] for r in rows], "n": [r[2] for r in rows]}


def _staged(ref: PageRef, stage: str) -> dict[str, list]:
    ctx = stages.context()
    return staging.read_arrow(ctx.get(ref.key(stage))).to_pydict()


def _kill(admin, ids) -> None:
    with admin.cursor() as cur:
        for i in ids:
            try:
                cur.execute("KILL CONNECTION %s", (i,))
            except pymysql.err.OperationalError as exc:
                if exc.args[0] != 1094:  # unknown thread: it ended by itself meanwhile
                    raise


def _connections_of(admin, user: str) -> list[int]:
    with admin.cursor() as cur:
        cur.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s AND COMMAND <> 'Killed'",
            (user,),
        )
        return [r[0] for r in cur.fetchall()]


@pytest.fixture
def between_attempts(monkeypatch):
    """What runs between two attempts of a page (instead of the backoff's sleep): a list the
    test appends actions to; each retry runs them and is counted in `.waits`."""

    class Between(list):
        waits: list[float]

    between = Between()
    between.waits = []

    def pause(seconds: float) -> None:
        between.waits.append(seconds)
        for action in between:
            action()

    monkeypatch.setattr(retry, "pause", pause)
    return between


def _killing_reads(monkeypatch, kill_after_first_chunk) -> list[int]:
    """Make the stages' page reader stream in small chunks and, on its first call only, run
    `kill_after_first_chunk(conn)` once the first chunk has arrived. Returns the list of
    calls' row counts (one entry per read started)."""
    real = stages.read_page
    calls: list[int] = []

    def read_page(conn, *args, **kwargs):
        calls.append(0)
        first = len(calls) == 1
        for batch in real(conn, *args, chunk_rows=1000, **kwargs):
            calls[-1] += batch.num_rows
            yield batch
            if first and calls[-1] == batch.num_rows:
                kill_after_first_chunk(conn)

    monkeypatch.setattr(stages, "read_page", read_page)
    return calls


# ---------------------------------------------------------------- a connection killed mid-read


def test_connection_killed_mid_read_rereads_the_page_from_its_start(
    unwired_stack, source, connect, new_database, monkeypatch, between_attempts
):
    src = source()
    admin = connect()
    run_id, messages = _plan(src.database, new_database("dst"), page_size=WIDE_ROWS)
    assert len(messages) == 1
    killed: list[int] = []

    def kill(conn) -> None:
        killed.append(conn.thread_id())
        _kill(admin, killed)

    calls = _killing_reads(monkeypatch, kill)

    out = stages.extract_page(stages.context(), messages[0])

    # The first read got its first chunk and then lost its connection, well before the page's
    # end; the second read started again from the page's first row, on a new connection.
    assert 0 < calls[0] < WIDE_ROWS
    assert calls[1:] == [WIDE_ROWS]
    assert len(between_attempts.waits) == 1
    assert killed[0] not in _connections_of(admin, src.user)
    assert out["rows"] == WIDE_ROWS
    assert _staged(PageRef(run_id, "wide", 1), staging.EXTRACTED) == _source_rows(
        admin, src.database
    )


def test_restart_every_connection_killed_mid_read_and_between_pages(
    unwired_stack, source, connect, target_only_account, monkeypatch, between_attempts
):
    """What a server restart does to a warm worker: every connection it holds, to the source
    and the target, is gone at once; the page in flight and the next ones complete exactly."""
    src = source(4 * 6000)
    monkeypatch.setenv("SLUICE_TARGET_URL", target_only_account.url)
    target_db, target_user = target_only_account.database, target_only_account.info.user
    admin = connect()
    run_id, messages = _plan(src.database, target_db, page_size=6000)
    assert len(messages) == 4

    def restart(_conn=None) -> None:
        _kill(admin, _connections_of(admin, src.user) + _connections_of(admin, target_user))

    calls = _killing_reads(monkeypatch, restart)
    ctx = stages.context()
    for i, message in enumerate(messages):
        if i == 2:
            restart()  # between pages: the pool's connections are dead when the next page asks
        ref = PageRef.from_dict(message)
        stages.extract_page(ctx, message)
        stages.transform_page(ctx, ref.key(staging.EXTRACTED))
        stages.load_page(ctx, ref.key(staging.TRANSFORMED))

    assert calls[0] < 6000 and calls[1:] == [6000] * 4  # page 1 read twice, from its start
    assert len(between_attempts.waits) == 1  # between pages, the pool replaced them unasked
    target = _source_rows(admin, target_db)
    assert target == _source_rows(admin, src.database)
    assert len(target["id"]) == 4 * 6000


# ---------------------------------------------------------------- MySQL target: lock waits


def _extracted_and_transformed(src: Source, target_db: str, page_size: int):
    run_id, messages = _plan(src.database, target_db, page_size=page_size)
    ctx = stages.context()
    stages.extract_page(ctx, messages[0])
    ref = PageRef.from_dict(messages[0])
    stages.transform_page(ctx, ref.key(staging.EXTRACTED))
    return ctx, ref


def _hold_row_lock(connect, target_db: str, row_id: int):
    """Another session holding an uncommitted row of key `row_id` (its lock) in the target."""
    blocker = connect()
    with blocker.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(f"INSERT INTO `{target_db}`.wide VALUES (%s, 'held', NULL)", (row_id,))
    return blocker


def _short_lock_waits_for_loads(ctx, run_id: str) -> None:
    """The load session (this thread's pooled target connection) gives up a lock wait after
    1 s, so a held row makes the load fail quickly (the server's default is 50 s)."""
    contract = stages._contract_for(ctx.settings.bucket, run_id)
    conn = stages._connection("target", contract, local_infile=True)
    with conn.cursor() as cur:
        cur.execute("SET SESSION innodb_lock_wait_timeout = 1")


def test_lock_wait_timeout_on_a_target_load_is_retried_and_loads_exactly(
    unwired_stack, source, connect, new_database, between_attempts
):
    src = source(3000)
    admin, target_db = connect(), new_database("dst")
    ctx, ref = _extracted_and_transformed(src, target_db, page_size=3000)
    _short_lock_waits_for_loads(ctx, ref.run_id)
    blocker = _hold_row_lock(connect, target_db, 1500)
    between_attempts.append(blocker.rollback)  # released after the first failure

    out = stages.load_page(ctx, ref.key(staging.TRANSFORMED))

    assert len(between_attempts.waits) == 1
    assert out["rows"] == 3000 and out["rejected"] == 0
    assert _source_rows(admin, target_db) == _source_rows(admin, src.database)


def test_a_failure_that_outlasts_the_retries_gives_up_naming_the_page(
    unwired_stack, source, connect, new_database, between_attempts, monkeypatch
):
    src = source(3000)
    admin, target_db = connect(), new_database("dst")
    ctx, ref = _extracted_and_transformed(src, target_db, page_size=3000)
    _short_lock_waits_for_loads(ctx, ref.run_id)
    blocker = _hold_row_lock(connect, target_db, 1500)  # never released
    monkeypatch.setenv("SLUICE_MYSQL_RETRIES", "2")

    with pytest.raises(PageError) as failed:
        stages.load_page(ctx, ref.key(staging.TRANSFORMED))

    message = str(failed.value)
    assert f"page wide#1 of run {ref.run_id} (load)" in message
    assert "MySQL error 1205 (lock wait timeout" in message
    assert "gave up after 3 attempts" in message
    assert len(between_attempts.waits) == 2
    blocker.rollback()
    assert _source_rows(admin, target_db)["id"] == []  # every attempt was rolled back


def _load_while_the_table_is_locked(
    ctx, ref, connect, target_db: str, between_attempts, guard_seconds: float
) -> dict:
    """Load the page while another session holds its table (LOCK TABLES ... WRITE), released
    after the load's first failure; the guard releases it after `guard_seconds` were the load
    to wait without end (a failed test, not a hang)."""
    holder, holder_lock = connect(), threading.Lock()
    with holder.cursor() as cur:
        cur.execute(f"LOCK TABLES `{target_db}`.wide WRITE")

    def unlock() -> None:
        with holder_lock, holder.cursor() as cur:
            cur.execute("UNLOCK TABLES")

    between_attempts.append(unlock)
    guard = threading.Timer(guard_seconds, unlock)
    guard.start()
    try:
        return stages.load_page(ctx, ref.key(staging.TRANSFORMED))
    finally:
        guard.cancel()
        unlock()


def test_a_load_waiting_for_its_tables_metadata_lock_gives_up_and_is_retried(
    unwired_stack, source, connect, new_database, between_attempts, monkeypatch
):
    """A session holds the target table (LOCK TABLES; DDL or a backup's lock do the same): the
    load's wait for the table ends after METADATA_LOCK_WAIT_SECONDS, not the server's day,
    and the retry loads the page exactly."""
    src = source(3000)
    admin, target_db = connect(), new_database("dst")
    ctx, ref = _extracted_and_transformed(src, target_db, page_size=3000)
    monkeypatch.setattr(mysql_target, "METADATA_LOCK_WAIT_SECONDS", 1)

    out = _load_while_the_table_is_locked(
        ctx, ref, connect, target_db, between_attempts, guard_seconds=60
    )

    assert len(between_attempts.waits) == 1
    assert out["rows"] == 3000 and out["rejected"] == 0
    assert _source_rows(admin, target_db) == _source_rows(admin, src.database)


def test_a_load_whose_socket_stays_silent_gives_up_and_is_retried(
    unwired_stack, source, connect, new_database, between_attempts, monkeypatch
):
    """The server says nothing to a load for longer than LOAD_SOCKET_TIMEOUT (here it waits
    for the table; a server gone in a failover never answers): the load gives up its
    connection and the retry loads the page exactly, instead of waiting out the function.
    Were the socket unbounded, the guard would free the table after 20 s and the load would
    succeed at its first attempt: no retry, a failed test."""
    src = source(3000)
    admin, target_db = connect(), new_database("dst")
    ctx, ref = _extracted_and_transformed(src, target_db, page_size=3000)
    monkeypatch.setattr(db, "LOAD_SOCKET_TIMEOUT", 1)
    monkeypatch.setattr(mysql_target, "METADATA_LOCK_WAIT_SECONDS", 30)

    out = _load_while_the_table_is_locked(
        ctx, ref, connect, target_db, between_attempts, guard_seconds=20
    )

    assert len(between_attempts.waits) == 1
    assert out["rows"] == 3000 and out["rejected"] == 0
    assert _source_rows(admin, target_db) == _source_rows(admin, src.database)


def test_a_connection_killed_while_its_load_waits_is_retried_and_loads_exactly(
    unwired_stack, source, connect, new_database, between_attempts
):
    """Killed mid-transaction (its LOAD DATA waiting on a row lock): the server discards the
    transaction, the page loads again on a new connection, and nothing is doubled."""
    src = source(3000)
    admin, target_db = connect(), new_database("dst")
    ctx, ref = _extracted_and_transformed(src, target_db, page_size=3000)
    blocker = _hold_row_lock(connect, target_db, 1500)
    failures: list[BaseException] = []
    result: dict = {}

    def load() -> None:  # a worker of its own, as another Lambda would be
        try:
            result.update(stages.load_page(ctx, ref.key(staging.TRANSFORMED)))
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=load, daemon=True)  # a stuck one cannot hold pytest open
    worker.start()
    try:
        waiting = _wait_for_waiting_load(admin, target_db, worker, failures)
        _kill(admin, [waiting])
    finally:
        # Whatever happened: the blocker's open transaction holds the table's metadata lock
        # too, and the fixture's DROP DATABASE (and any load queued behind it) would wait on it
        # for the server's lock_wait_timeout, a day.
        blocker.rollback()
        worker.join(timeout=120)
        if worker.is_alive():  # leave no load of ours running into the fixture's DROP
            _kill(admin, _loads_into(admin, target_db))

    assert not worker.is_alive() and failures == []
    assert len(between_attempts.waits) == 1  # the kill, and nothing else, was retried
    with admin.cursor() as cur:  # the killed session is gone, not still holding anything
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", (waiting,))
        assert cur.fetchone()[0] == 0
    assert result["rows"] == 3000
    assert _source_rows(admin, target_db) == _source_rows(admin, src.database)


def _wait_for_waiting_load(
    admin, target_db: str, worker: threading.Thread, failures: list, limit: float = 60
) -> int:
    """The id of the connection whose LOAD DATA into `target_db` waits on a row lock.

    Read from SHOW ENGINE INNODB STATUS, which InnoDB writes anew on each call. Not from
    information_schema.INNODB_TRX: that is a cache, shared by every session of the server,
    refreshed only once nobody has read it for 100 ms (CACHE_MIN_IDLE_TIME in trx0i_s.cc), so
    polling it (from here or from any other test on the server) can show the snapshot taken
    before the load began to wait for as long as the polling lasts.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and worker.is_alive():
        with admin.cursor() as cur:
            cur.execute("SHOW ENGINE INNODB STATUS")
            status = cur.fetchone()[2]
        for trx in status.split("\n---TRANSACTION ")[1:]:
            thread = re.search(r"^(?:MariaDB|MySQL) thread id (\d+),", trx, re.MULTILINE)
            waits = re.search(r"^LOCK WAIT ", trx, re.MULTILINE)
            if thread and waits and "LOAD DATA" in trx and f"`{target_db}`" in trx:
                return int(thread.group(1))
        time.sleep(0.05)
    raise AssertionError(
        f"no LOAD DATA into {target_db} waited on the held row within {limit:g} s "
        f"(the load {'still runs' if worker.is_alive() else 'ended'}; failures: {failures})"
    )


def _loads_into(admin, target_db: str) -> list[int]:
    """The ids of the connections running a LOAD DATA into `target_db`."""
    with admin.cursor() as cur:
        cur.execute(
            "SELECT ID FROM information_schema.PROCESSLIST "
            "WHERE INFO LIKE %s AND COMMAND <> 'Killed'",
            (f"LOAD DATA%`{target_db}`%",),
        )
        return [r[0] for r in cur.fetchall()]


# ---------------------------------------------------------------- statement timeout


def test_a_read_past_the_statement_timeout_fails_the_page_without_retrying(
    unwired_stack, source, connect, new_database, monkeypatch, between_attempts
):
    src = source()
    _, messages = _plan(src.database, new_database("dst"), page_size=WIDE_ROWS)
    # The server ends the page's read after 1 ms; the plan's own session is set apart.
    monkeypatch.setenv("SLUICE_SOURCE_STATEMENT_TIMEOUT", "0.001")

    with pytest.raises(PageError) as failed:
        stages.extract_page(stages.context(), messages[0])

    assert "page wide#1" in str(failed.value)
    assert "statement timeout (MariaDB max_statement_time, 0.001 s)" in str(failed.value)
    assert between_attempts.waits == []


def test_source_reading_sessions_carry_the_statement_timeout(
    unwired_stack, source, new_database, monkeypatch
):
    src = source(10)
    run_id, _ = _plan(src.database, new_database("dst"), page_size=10)
    monkeypatch.setenv("SLUICE_SOURCE_STATEMENT_TIMEOUT", "42.5")
    contract = stages._contract_for(stages.context().settings.bucket, run_id)
    with stages._connection("source", contract, raw=True).cursor() as cur:
        cur.execute("SELECT @@SESSION.max_statement_time")
        assert float(cur.fetchone()[0]) == 42.5


# ---------------------------------------------------------------- the cap on source connections


class PeakConnections:
    """Samples how many connections `user` holds on the server, from a thread of its own."""

    def __init__(self, connect, user: str):
        self.conn, self.user = connect(), user
        self.peak, self.samples = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, len(_connections_of(self.conn, self.user)))
            self.samples += 1
            self._stop.wait(0.005)

    def __enter__(self) -> PeakConnections:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def test_concurrent_extract_workers_hold_at_most_two_source_connections_each(
    unwired_stack, source, connect, new_database
):
    """N extract workers at once (ExtractConcurrency = N Lambda instances; here N threads)
    plus the plan's worker: at most 2 per worker, whatever the number of pages."""
    workers, pages = 3, 9
    src = source(pages * 1000)
    _, messages = _plan(src.database, new_database("dst"), page_size=1000)  # this thread: 2
    assert len(messages) == pages
    ctx = stages.context()
    queue = list(messages)
    lock, failures = threading.Lock(), []

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                message = queue.pop()
            try:
                stages.extract_page(ctx, message)
            except BaseException as exc:
                failures.append(exc)

    with PeakConnections(connect, src.user) as seen:
        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert failures == []
    assert seen.samples > 0 and seen.peak > 2
    assert seen.peak <= 2 * workers + 2


def test_a_local_run_stays_within_the_source_connection_cap(
    demo_source, connect, target_only_account, mysql_info, monkeypatch, tmp_path
):
    """The local runtime: one extract worker (its consumer thread) and one state machine
    execution (plan, then verify), 2 connections each at most: 4."""
    admin = connect()
    user, password = _create_account(admin, demo_source, "sluice_s_")
    try:
        monkeypatch.setenv(
            "SLUICE_SOURCE_URL", f"mysql://{user}:{password}@{mysql_info.host}:{mysql_info.port}"
        )
        monkeypatch.setenv("SLUICE_TARGET_URL", target_only_account.url)
        contract = {
            "version": 1,
            "source": {"database": demo_source},
            "target": {"kind": "mysql", "database": target_only_account.database},
            "defaults": {"page_size": 40},
            "tables": [
                {"source": name, "key": key, "target": {"table": name}}
                for name, key in DEMO_KEYS.items()
                if name != "order_totals"
            ],
        }
        path = tmp_path / "contract.json"
        path.write_text(json.dumps(contract))

        with PeakConnections(connect, user) as seen:
            summary = run_local(
                path, as_json=True, state_dir=tmp_path / "state", timeout=120, **_quiet()
            )

        assert summary["status"] == "SUCCEEDED", summary["verdict"]
        assert seen.samples > 0 and seen.peak > 0
        assert seen.peak <= 4
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'%'")


def _quiet() -> dict:
    import io

    return {"out": io.StringIO(), "err": io.StringIO()}
