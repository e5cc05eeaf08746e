"""read_page's one-line-a-row reading against real MariaDB: every value as the column-by-column
reading gives it (the driver decoding each column), and as written."""

from __future__ import annotations

import random
import struct

import pyarrow as pa
import pytest
from sluice import rowlines
from sluice.source import _read_by_columns, introspect, line_query, read_page
from sluice.types import arrow_schema

from .test_type_fidelity import ROWS, fill_matrix


@pytest.fixture
def db(new_database) -> str:
    return new_database("lines")


@pytest.fixture
def conn(connect, db):
    return connect(db)


def both_ways(
    conn, raw, db: str, table: str, key=("id",), lo=None, hi=None, chunk_rows=20_000, whole=True
):
    """(read_page's table, the column-by-column table) of the rows lo < key <= hi; with
    `whole`, first checks that every row comes as a line matching its header, so that
    read_page reads it as a line rather than falling back to columns."""
    src = introspect(conn, db, only=[table])[table]
    schema = arrow_schema(src.columns)
    if whole:
        with raw.cursor() as cur:
            sql, params = line_query(db, src, list(key), lo, hi)
            cur.execute(sql, params)
            lines = pa.array([r[0] for r in cur.fetchall()], pa.large_binary())
        assert lines.null_count == 0
        rowlines.split(lines, rowlines.layout(src.columns))  # raises LineError otherwise
    lines = pa.Table.from_batches(
        list(read_page(raw, db, src, list(key), lo, hi, chunk_rows=chunk_rows)), schema=schema
    )
    columns = pa.Table.from_batches(
        list(_read_by_columns(raw, db, src, list(key), lo, hi, chunk_rows=chunk_rows)),
        schema=schema,
    )
    return lines, columns


def column_of(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist()


TRICKY_TEXT = [
    "",
    "NULL",
    "\\N",
    "null",
    "\t",
    "\n",
    "\r\n",
    ",",
    '"',
    '""',
    "'",
    "\\",
    "\\\\t",
    "a\tb\nc\\d\"e'f,g",
    "\x00",
    "nul\x00in the middle",
    "0000000000",  # looks like a header
    "99",
    "😀🎁 emoji 𝄞",
    " trailing ",
    "x" * 200,
]


def test_text_with_delimiters_quotes_newlines_and_null_markers_is_read_exactly(conn, raw, db):
    rows = [(i, t, t, t) for i, t in enumerate(TRICKY_TEXT, start=1)]
    rows += [(100, None, None, None), (101, "", "", "")]
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(255) NULL, tx TEXT NULL, "
            "c CHAR(255) NULL) CHARSET utf8mb4"
        )
        cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s)", rows)

    lines, columns = both_ways(conn, raw, db, "t", chunk_rows=5)

    assert lines.equals(columns)
    assert column_of(lines, "v") == [r[1] for r in rows]
    assert column_of(lines, "tx") == [r[2] for r in rows]
    # CHAR drops trailing spaces on read, on both ways alike
    assert column_of(lines, "c") == [None if r[3] is None else r[3].rstrip(" ") for r in rows]
    by_id = dict(zip(column_of(lines, "id"), column_of(lines, "v"), strict=True))
    assert by_id[100] is None and by_id[101] == "" and by_id[2] == "NULL" and by_id[3] == "\\N"


def test_binary_values_with_every_byte_are_read_exactly(conn, raw, db):
    every = bytes(range(256))
    rows = [(b, bytes([b]), bytes([b]) * 3) for b in range(256)]
    rows += [(300, every, every * 4), (301, b"", b""), (302, None, None)]
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE b (id INT PRIMARY KEY, vb VARBINARY(300), bl BLOB)")
        cur.executemany("INSERT INTO b VALUES (%s, %s, %s)", rows)

    lines, columns = both_ways(conn, raw, db, "b", chunk_rows=64)

    assert lines.equals(columns)
    assert column_of(lines, "vb") == [r[1] for r in rows]
    assert column_of(lines, "bl") == [r[2] for r in rows]


def test_every_type_of_the_matrix_reads_as_the_driver_reads_it(conn, raw, db):
    with conn.cursor() as cur:
        fill_matrix(cur)

    lines, columns = both_ways(conn, raw, db, "type_matrix")

    assert lines.num_rows == len(ROWS)
    assert lines.equals(columns)
    assert column_of(lines, "bl")[1] == b"\x00\x01\x02\x03\x00\xff"
    assert column_of(lines, "dt")[3] == "0000-00-00"
    assert column_of(lines, "b64")[1] == 2**64 - 1


def test_random_floats_and_doubles_keep_every_bit(conn, raw, db):
    rng = random.Random(4)
    doubles, floats = [], []
    while len(doubles) < 3000:
        (d,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        (f,) = struct.unpack("<f", rng.getrandbits(32).to_bytes(4, "little"))
        if d == d and abs(d) != float("inf") and f == f and abs(f) != float("inf"):
            doubles.append(d)
            floats.append(f)
    rows = [(i, d, f) for i, (d, f) in enumerate(zip(doubles, floats, strict=True))]
    rows += [(-1, 0.0, -0.0), (-2, 5e-324, 1e-45), (-3, 1.7976931348623157e308, 3.4028234e38)]
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE f (id INT PRIMARY KEY, db DOUBLE, fl FLOAT)")
        cur.executemany("INSERT INTO f VALUES (%s, %s, %s)", rows)

    lines, columns = both_ways(conn, raw, db, "f", chunk_rows=1000)

    assert lines.equals(columns)
    want = dict((i, (d, f)) for i, d, f in rows)
    got = zip(column_of(lines, "id"), column_of(lines, "db"), column_of(lines, "fl"), strict=True)
    for i, d, f in got:
        assert struct.pack("<d", d) == struct.pack("<d", want[i][0]) or d == want[i][0] == 0
        assert struct.pack("<f", f) == struct.pack("<f", want[i][1]) or f == want[i][1] == 0


@pytest.mark.parametrize(
    "charset", ["latin1", "cp1251", "sjis", "gbk", "utf8mb3", "ucs2", "utf16", "utf32", "ascii"]
)
def test_columns_of_other_charsets_arrive_as_utf8_as_the_wire_converts_them(conn, raw, db, charset):
    samples = {
        "latin1": "café ñ ü ÿ €",
        "cp1251": "Привет, мир",
        "sjis": "日本語テキスト",
        "gbk": "中文文本",
        "utf8mb3": "ünïcödé 日本",
        "ucs2": "Ωmega ü 日本",
        "utf16": "𝄞 and 😀",
        "utf32": "𝄞 and 😀",
        "ascii": "plain \t text",
    }
    text = samples[charset]
    with conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE cs (id INT PRIMARY KEY, v VARCHAR(40) CHARACTER SET {charset}, "
            f"tx TEXT CHARACTER SET {charset}, e ENUM('a', 'b') CHARACTER SET {charset}, "
            # A second collation in one line: the server joins them all the same.
            "u VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin)"
        )
        cur.execute(
            "INSERT INTO cs VALUES (1, %s, %s, 'a', 'x'), (2, '', NULL, NULL, 'y')", (text, text)
        )

    lines, columns = both_ways(conn, raw, db, "cs")

    assert lines.equals(columns)
    assert column_of(lines, "v") == [text, ""]
    assert column_of(lines, "tx") == [text, None]
    assert column_of(lines, "e") == ["a", None]


def test_bytes_stay_bytes_in_a_line_beside_utf8_and_other_charsets(conn, raw, db):
    """A utf8mb4 column goes into the line without conversion, but cast to binary: joined as
    text beside utf8mb4 columns of other collations (the fault suite's table: general_ci,
    unicode_ci and JSON's utf8mb4_bin), the server made the line text and turned every byte
    of a binary value that is not UTF-8 into '?'."""
    every = bytes(range(256))
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE mix (id INT PRIMARY KEY, "
            "name VARCHAR(80) CHARACTER SET utf8mb4 NOT NULL, "
            "note TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, "
            "data VARBINARY(300), "
            "doc JSON, "
            "code CHAR(3) CHARACTER SET latin1)"
        )
        cur.execute(
            "INSERT INTO mix VALUES (1, 'naïve 名前 😀', 'café', %s, '{\"k\": \"ü\"}', 'ÿx'), "
            "(2, '', NULL, %s, NULL, NULL), (3, 'x', '', NULL, '[]', '')",
            (every, b"\xff\xfe\x80"),
        )

    lines, columns = both_ways(conn, raw, db, "mix")

    assert lines.equals(columns)
    assert column_of(lines, "data") == [every, b"\xff\xfe\x80", None]
    assert column_of(lines, "name") == ["naïve 名前 😀", "", "x"]
    assert column_of(lines, "note") == ["café", None, ""]
    assert column_of(lines, "code") == ["ÿx", None, ""]


def test_huge_text_within_a_line_is_read_whole(conn, raw, db):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE h (id INT PRIMARY KEY, tx LONGTEXT, bl LONGBLOB)")
        cur.execute(
            "INSERT INTO h VALUES (1, REPEAT('ab\\t😀', 1000000), REPEAT(x'00ff', 1000000))"
        )
        cur.execute("INSERT INTO h VALUES (2, 'small', x'01')")

    lines, columns = both_ways(conn, raw, db, "h")

    assert lines.equals(columns)
    assert column_of(lines, "tx")[0] == "ab\t😀" * 1_000_000
    assert column_of(lines, "bl")[0] == b"\x00\xff" * 1_000_000


@pytest.mark.slow
@pytest.mark.parametrize(
    ("big_ids", "chunk_rows"),
    [([5], 3), ([1], 100), ([4], 3), ([5, 8], 2)],  # mid-chunk, first row, first of a chunk
)
def test_a_row_longer_than_max_allowed_packet_is_read_column_by_column(
    conn, raw, db, big_ids, chunk_rows
):
    (packet,) = _one(conn, "SELECT @@max_allowed_packet")
    half = packet // 2 + 1000  # each value fits a packet; the two of a row together do not
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE o (k VARCHAR(10), id INT, a LONGTEXT, b LONGBLOB, "
            "PRIMARY KEY (k, id)) CHARSET utf8mb4"
        )
        for i in range(1, 11):
            cur.execute("INSERT INTO o VALUES ('k', %s, %s, %s)", (i, f"row {i}", b"\x00" * i))
        for i in big_ids:
            cur.execute("UPDATE o SET a = REPEAT('é', %s) WHERE id = %s", (half // 2, i))
            cur.execute("UPDATE o SET b = REPEAT(x'ff', %s) WHERE id = %s", (half, i))

    src = introspect(conn, db, only=["o"])["o"]
    with raw.cursor() as cur:  # the line of a big row is too long for the server to build
        sql, params = line_query(db, src, ["k", "id"], None, None)
        cur.execute(sql, params)
        assert [r[0] is None for r in cur.fetchall()] == [i in big_ids for i in range(1, 11)]

    lines, columns = both_ways(
        conn, raw, db, "o", key=("k", "id"), chunk_rows=chunk_rows, whole=False
    )

    assert column_of(lines, "id") == list(range(1, 11))
    assert lines.equals(columns)
    for i in big_ids:
        assert column_of(lines, "a")[i - 1] == "é" * (half // 2)
        assert column_of(lines, "b")[i - 1] == b"\xff" * half


def test_pages_read_one_line_a_row_stay_within_their_range(conn, raw, db):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE r (id BIGINT UNSIGNED PRIMARY KEY, v VARCHAR(5))")
        cur.executemany(
            "INSERT INTO r VALUES (%s, %s)", [(2**64 - i, str(i)) for i in range(1, 50)]
        )

    lines, columns = both_ways(conn, raw, db, "r", lo=[str(2**64 - 40)], hi=[str(2**64 - 3)])

    assert lines.equals(columns)
    assert column_of(lines, "id") == [2**64 - i for i in range(39, 2, -1)]


@pytest.mark.parametrize("bad_id", [1, 7, 60])  # first row, mid-chunk, first of a chunk
def test_lines_that_do_not_match_their_header_are_read_column_by_column(
    conn, raw, db, monkeypatch, bad_id
):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE m (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.executemany("INSERT INTO m VALUES (%s, %s)", [(i, f"v{i}") for i in range(1, 121)])
    select_line = rowlines.select_line

    def one_line_longer(lay):  # as if the server evaluated a value twice and got two
        line = select_line(lay)
        return f"IF(`id` = {bad_id}, CONCAT({line}, x'00'), {line})"

    monkeypatch.setattr(rowlines, "select_line", one_line_longer)
    src = introspect(conn, db, only=["m"])["m"]
    with raw.cursor() as cur:
        sql, params = line_query(db, src, ["id"], None, None)
        cur.execute(sql, params)
        lines = pa.array([r[0] for r in cur.fetchall()], pa.large_binary())
    with pytest.raises(rowlines.LineError, match=f"line {bad_id} "):
        rowlines.split(lines, rowlines.layout(src.columns))

    lines, columns = both_ways(conn, raw, db, "m", chunk_rows=59, whole=False)

    assert column_of(lines, "id") == list(range(1, 121))
    assert lines.equals(columns)


def _one(conn, sql: str) -> tuple:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()
