"""sluice.fetch against real MariaDB: a one-column result read off pymysql's buffer gives what
pymysql's own fetch gives, value for value, and leaves the connection as pymysql would."""

from __future__ import annotations

import inspect

import pymysql
import pymysql.cursors
import pytest
from pymysql.connections import Connection, MySQLResult
from sluice.db import connect as sluice_connect
from sluice.fetch import fetch_lines

# Values of each length-coding class: 1 byte (< 251), 3 (0xFC), 4 (0xFD); NULL (0xFB).
SIZES = [0, 1, 2, 250, 251, 252, 65_535, 65_536, 70_000, 300_000]


def test_pymysql_still_has_the_internals_fetch_reads():
    conn_attrs = ("_rfile", "_next_seq_id", "_sock", "_read_timeout", "_current_timeout", "_result")
    init = inspect.getsource(Connection.__init__) + inspect.getsource(Connection.connect)
    for name in conn_attrs:
        assert f"self.{name}" in init, f"pymysql's Connection no longer sets {name}"
    assert callable(Connection._force_close)
    result = inspect.getsource(MySQLResult)
    for name in ("unbuffered_active", "self.connection = None", "_check_packet_is_eof"):
        assert name in result, f"pymysql's MySQLResult no longer has {name}"


@pytest.fixture
def values_table(connect, new_database) -> str:
    """t(id, v LONGBLOB): a value of each size (bytes that vary), a NULL, then 2,000 short
    rows, so that sequence numbers wrap several times."""
    db = new_database("fetch")
    conn = connect(db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v LONGBLOB)")
        for i, size in enumerate(SIZES, start=1):
            cur.execute(
                "INSERT INTO t VALUES (%s, %s)",
                (i, bytes(range(256)) * (size // 256) + bytes(size % 256)),
            )
        cur.execute("INSERT INTO t VALUES (%s, NULL)", (len(SIZES) + 1,))
        cur.executemany(
            "INSERT INTO t VALUES (%s, %s)",
            [(100 + i, f"row {i} \xfb\xfe\xff".encode("latin-1")) for i in range(2000)],
        )
    return db


QUERY = "SELECT CAST(v AS BINARY) FROM t ORDER BY id"


def _pymysql_values(conn, query: str = QUERY) -> list:
    with conn.cursor() as cur:
        cur.execute(query)
        return [r[0] for r in cur.fetchall()]


def _fetched(conn, chunk: int, query: str = QUERY) -> list:
    cur = conn.cursor(pymysql.cursors.SSCursor)
    cur.execute(query)
    out = []
    while values := fetch_lines(cur, chunk):
        assert len(values) <= chunk
        out += values
    cur.close()
    return out


@pytest.mark.parametrize("chunk", [1, 3, 1000, 100_000])
def test_every_value_arrives_as_pymysql_reads_it(values_table, mysql_info, chunk):
    conn = sluice_connect(mysql_info.with_database(values_table), raw=True)
    try:
        expected = _pymysql_values(conn)
        assert [len(v) for v in expected[: len(SIZES)]] == SIZES
        assert expected[len(SIZES)] is None

        assert _fetched(conn, chunk) == expected
        assert _pymysql_values(conn, "SELECT 42") == ["42"]  # the connection goes on
    finally:
        conn.close()


def test_a_cursor_closed_early_leaves_the_rest_to_pymysql(values_table, mysql_info):
    conn = sluice_connect(mysql_info.with_database(values_table), raw=True)
    try:
        expected = _pymysql_values(conn)
        cur = conn.cursor(pymysql.cursors.SSCursor)
        cur.execute(QUERY)
        first = fetch_lines(cur, 500)
        middle = [r[0] for r in cur.fetchmany(700)]  # pymysql reads on where fetch stopped
        last = fetch_lines(cur, 10)
        cur.close()  # pymysql reads the rest to the end

        assert first + middle + last == expected[:1210]
        assert _pymysql_values(conn, "SELECT 42") == ["42"]
    finally:
        conn.close()


def test_a_result_of_other_columns_is_refused(values_table, mysql_info):
    conn = sluice_connect(mysql_info.with_database(values_table), raw=True)
    try:
        for query in ("SELECT id, v FROM t", "SELECT CAST(id AS CHAR) FROM t"):
            cur = conn.cursor(pymysql.cursors.SSCursor)
            cur.execute(query)
            with pytest.raises(ValueError, match="one binary column"):
                fetch_lines(cur, 10)
            cur.close()
    finally:
        conn.close()


def test_a_server_error_after_some_rows_is_raised_as_pymysql_raises_it(values_table, connect):
    """The server sends rows, then an error packet (a scalar subquery that finds two rows for
    row 150): the rows before it arrive, then the server's error."""
    conn = connect(values_table)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE dup (k INT)")
        cur.execute("INSERT INTO dup VALUES (150), (150)")
    query = (
        "SELECT CAST(CONCAT(id, (SELECT k FROM dup WHERE dup.k = t.id)) AS BINARY) "
        "FROM t WHERE id < 100 OR id BETWEEN 100 AND 2099 ORDER BY id"
    )
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(query)
        got = []
        with pytest.raises(pymysql.err.OperationalError) as failed:
            while values := fetch_lines(cur, 7):
                got += values
    assert failed.value.args[0] == 1242  # Subquery returns more than 1 row
    assert got == [None] * len(got) and 0 < len(got) <= len(SIZES) + 1 + 50
    assert _pymysql_values(conn, "SELECT 42") == [42]  # the connection goes on


def test_a_connection_killed_mid_result_is_a_lost_connection(connect, new_database, mysql_info):
    db = new_database("fetch")
    admin = connect(db)
    with admin.cursor() as cur:
        cur.execute("CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(200))")
        cur.execute(
            "INSERT INTO big SELECT seq, REPEAT(CHAR(65 + seq % 26), 150) FROM seq_1_to_300000"
        )
    conn = sluice_connect(mysql_info.with_database(db), raw=True)
    cur = conn.cursor(pymysql.cursors.SSCursor)
    cur.execute("SELECT CAST(v AS BINARY) FROM big ORDER BY id")
    got = fetch_lines(cur, 1000)
    admin.kill(conn.thread_id())
    with pytest.raises(pymysql.err.OperationalError) as failed:
        while values := fetch_lines(cur, 1000):
            got += values
    assert failed.value.args[0] in (2013, 1927), failed.value  # lost, or killed
    assert 1000 <= len(got) < 300_000
    assert got == [bytes([65 + i % 26]) * 150 for i in range(1, len(got) + 1)]
    assert not conn.open


@pytest.mark.slow
def test_a_row_of_several_packets_arrives_whole(connect, new_database, mysql_info):
    """A value of 16 MiB or more travels in several packets (where max_allowed_packet allows
    it: Aurora's default is 64 MiB)."""
    admin = connect()
    with admin.cursor() as cur:
        cur.execute("SELECT @@global.max_allowed_packet")
        (before,) = cur.fetchone()
        cur.execute("SET GLOBAL max_allowed_packet = %s", (64 * 1024 * 1024,))
    try:
        conn = sluice_connect(mysql_info.with_database(new_database("fetch")), raw=True)
        # A row's payload is the value and its length (4 bytes below 2^24, 9 from there):
        # exactly one whole packet and an empty one after it, one byte over, the largest
        # 4-byte length, the smallest 9-byte one, and three packets.
        sizes = [16_777_210, 16_777_211, 16_777_212, 0xFFFFFF, 0x1000000, 33_554_440]
        query = (
            f"SELECT CAST(REPEAT(CHAR(seq), ELT(seq + 1, {', '.join(map(str, sizes))})) AS BINARY)"
            f" FROM seq_0_to_{len(sizes) - 1}"
        )
        for chunk in (1, 10):
            got = _fetched(conn, chunk, query)
            assert [len(v) for v in got] == sizes
            assert all(v == bytes([i]) * len(v) for i, v in enumerate(got))
        assert _pymysql_values(conn, "SELECT 42") == ["42"]
        conn.close()
    finally:
        with admin.cursor() as cur:
            cur.execute("SET GLOBAL max_allowed_packet = %s", (before,))


def test_a_read_interrupted_mid_result_closes_the_connection(values_table, mysql_info):
    """An interruption (here a KeyboardInterrupt) inside a read leaves the stream at an
    unknown point: the connection is closed, as pymysql closes it, and the cursor closes
    without reading on."""
    conn = sluice_connect(mysql_info.with_database(values_table), raw=True)
    cur = conn.cursor(pymysql.cursors.SSCursor)
    cur.execute(QUERY)
    assert len(fetch_lines(cur, 100)) == 100

    class Interrupted:
        def __init__(self, rfile):
            self.rfile = rfile

        def peek(self, n):
            raise KeyboardInterrupt

        def read(self, n):
            raise KeyboardInterrupt

        def close(self):
            self.rfile.close()

    conn._rfile = Interrupted(conn._rfile)
    with pytest.raises(KeyboardInterrupt):
        fetch_lines(cur, 100)
    assert not conn.open
    cur.close()  # nothing left to read: no error
