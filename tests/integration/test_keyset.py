"""Keyset pages against real tables: cut_pages cuts, read_page reads, every row exactly once."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sluice.keys import PageRange, cut_pages
from sluice.source import decode_key, introspect, read_page
from sluice.types import arrow_schema

settings.register_profile(
    "sluice-integration",
    deadline=None,
    max_examples=25,
    # One database serves every example; each example makes its own table in it.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1


@pytest.fixture
def db(new_database) -> str:
    return new_database("keys")


@pytest.fixture
def conn(connect, db):
    return connect(db)


def make_table(conn, ddl: str, table: str, rows: list[tuple]) -> None:
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{table}`")
        cur.execute(ddl)
        if rows:
            marks = ", ".join(["%s"] * len(rows[0]))
            cur.executemany(f"INSERT IGNORE INTO `{table}` VALUES ({marks})", rows)


def keys_in_order(conn, db: str, table: str, key: list[str]) -> list[tuple]:
    """The key of every row in the server's own key order: what the pages must add up to."""
    cols = ", ".join(f"`{k}`" for k in key)
    with conn.cursor() as cur:
        cur.execute(f"SELECT {cols} FROM `{db}`.`{table}` ORDER BY {cols}")
        return [tuple(r) for r in cur.fetchall()]


def read_pages(conn, raw, db: str, table: str, key: list[str], page_size: int) -> list[list[tuple]]:
    """Cut `table` into pages, pass each range through JSON as a page message carries it,
    and read each page back; returns the keys of each page's rows, in the order read."""
    ranges = [
        PageRange.from_dict(json.loads(json.dumps(r.to_dict())))
        for r in cut_pages(raw, db, table, key, page_size)
    ]
    assert [r.page for r in ranges] == list(range(1, len(ranges) + 1))
    src = introspect(conn, db, only=[table])[table]
    pages = []
    for r in ranges:
        batches = list(read_page(raw, db, src, key, decode_key(r.lo), decode_key(r.hi)))
        rows = pa.Table.from_batches(batches, schema=arrow_schema(src.columns))
        pages.append([tuple(row[k] for k in key) for row in rows.select(key).to_pylist()])
    return pages


def assert_even_pages(pages: list[list], total: int, page_size: int) -> None:
    """No empty page, every page but the last exactly full, the last not over full."""
    assert len(pages) == math.ceil(total / page_size)
    assert all(len(p) == page_size for p in pages[:-1])
    if pages:
        assert 1 <= len(pages[-1]) <= page_size


@pytest.mark.parametrize("page_size", [1, 2, 7, 22, 23, 24, 1000])
def test_integer_keys_cover_every_row_once_for_any_page_size(conn, raw, db, page_size):
    ids = [i * 3 + (i % 2) for i in range(1, 24)]  # 23 rows, uneven gaps
    make_table(
        conn,
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v VARCHAR(10))",
        "t",
        [(i, f"v{i}") for i in ids],
    )

    pages = read_pages(conn, raw, db, "t", ["id"], page_size)

    assert [k for p in pages for k in p] == keys_in_order(conn, db, "t", ["id"])
    assert_even_pages(pages, len(ids), page_size)


@pytest.mark.parametrize("page_size", [1, 3, 5, 29, 30, 31])
def test_composite_int_string_keys_cover_every_row_once(conn, raw, db, page_size):
    rows = [(a, b) for a in (-5, 0, 1, 2, 1000) for b in ("", "a", "B", "b c", "Zoë", "ß")]
    make_table(
        conn,
        "CREATE TABLE t (a INT NOT NULL, b VARCHAR(20) NOT NULL, PRIMARY KEY (a, b)) "
        "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "t",
        rows,
    )

    pages = read_pages(conn, raw, db, "t", ["a", "b"], page_size)

    assert [k for p in pages for k in p] == keys_in_order(conn, db, "t", ["a", "b"])
    assert_even_pages(pages, len(rows), page_size)


MIXED_CASE_BIN = [
    "a", "A", "á", "Á", "b", "B", "z", "Z", "ß", "ss", "SS", "日本", "🚀", "😀", "a🚀",
    "a b", "a\tb", "O'Brien", "back\\slash", "%_", "", "Zoë", "zoe",
]  # fmt: skip
# Under a case- and accent-insensitive collation these are distinct; their case is mixed.
MIXED_CASE_CI = [
    "apple", "Banana", "cherry", "Äpfel", "Zoë", "zebra", "Łukasz", "Øberg", "田中",
    "Иванов", "a🚀", "O'Brien", "MIXED case", "mixed Cases", "",
]  # fmt: skip


@pytest.mark.parametrize(
    ("collation", "values"),
    [("utf8mb4_bin", MIXED_CASE_BIN), ("utf8mb4_unicode_ci", MIXED_CASE_CI)],
)
@pytest.mark.parametrize("page_size", [1, 4, 100])
def test_string_keys_with_mixed_case_and_unicode_follow_the_collation(
    conn, raw, db, collation, values, page_size
):
    make_table(
        conn,
        f"CREATE TABLE s (k VARCHAR(40) NOT NULL PRIMARY KEY, n INT) "
        f"DEFAULT CHARSET=utf8mb4 COLLATE={collation}",
        "s",
        [(v, i) for i, v in enumerate(values)],
    )
    assert len(keys_in_order(conn, db, "s", ["k"])) == len(values)  # all distinct here

    pages = read_pages(conn, raw, db, "s", ["k"], page_size)

    assert [k for p in pages for k in p] == keys_in_order(conn, db, "s", ["k"])
    assert_even_pages(pages, len(values), page_size)


@pytest.mark.parametrize("page_size", [1, 4, 9, 100])
def test_view_with_a_declared_key_pages_like_a_table(conn, raw, db, page_size):
    make_table(
        conn,
        "CREATE TABLE base (id INT NOT NULL PRIMARY KEY, name VARCHAR(20))",
        "base",
        [(i, f"n{i}") for i in range(1, 31)],
    )
    with conn.cursor() as cur:
        cur.execute(
            "CREATE VIEW v AS SELECT id * 10 AS k, UPPER(name) AS name FROM base WHERE id % 3 <> 0"
        )
    assert introspect(conn, db, only=["v"])["v"].kind == "view"

    pages = read_pages(conn, raw, db, "v", ["k"], page_size)

    expected = keys_in_order(conn, db, "v", ["k"])
    assert len(expected) == 20
    assert [k for p in pages for k in p] == expected
    assert_even_pages(pages, len(expected), page_size)


def test_empty_table_has_no_pages(conn, raw, db):
    make_table(conn, "CREATE TABLE e (id INT NOT NULL PRIMARY KEY)", "e", [])

    assert cut_pages(raw, db, "e", ["id"], 10) == []
    assert cut_pages(raw, db, "e", ["id"], 1) == []


SPARSE_BIGINTS = [
    INT64_MIN, INT64_MIN + 1, INT64_MIN + 2, -(2**53) - 1, -(2**53), -1, 0, 1,
    2**31, 2**53, 2**53 + 1, 2**53 + 2, INT64_MAX - 2, INT64_MAX - 1, INT64_MAX,
]  # fmt: skip
SPARSE_UNSIGNED = [0, 1, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**63 + 1, UINT64_MAX - 1, UINT64_MAX]


@pytest.mark.parametrize(
    ("column_type", "keys"),
    [("BIGINT", SPARSE_BIGINTS), ("BIGINT UNSIGNED", SPARSE_UNSIGNED)],
)
@pytest.mark.parametrize("page_size", [1, 2, 3, 4, 8, 16])
def test_sparse_bigint_keys_at_the_limits_give_even_pages(
    conn, raw, db, column_type, keys, page_size
):
    # Neighbours past 2**53 differ only beyond double precision: a range compared as a
    # double would merge or skip them.
    make_table(
        conn,
        f"CREATE TABLE b (id {column_type} NOT NULL PRIMARY KEY, v INT)",
        "b",
        [(k, i) for i, k in enumerate(keys)],
    )

    pages = read_pages(conn, raw, db, "b", ["id"], page_size)

    assert [k for p in pages for (k,) in p] == sorted(keys)
    assert_even_pages(pages, len(keys), page_size)


_KEY_TEXT = st.text(alphabet="aAbBáÁßs _\\'🚀日", max_size=4)


@settings(settings.get_profile("sluice-integration"))
@given(
    rows=st.lists(st.tuples(st.integers(-3, 3), _KEY_TEXT), max_size=40),
    page_size=st.integers(1, 45),
    collation=st.sampled_from(["utf8mb4_bin", "utf8mb4_unicode_ci"]),
)
def test_random_composite_keys_are_read_once_each_in_key_order(
    conn, raw, db, rows, page_size, collation
):
    # INSERT IGNORE drops keys equal under the collation (or padding); the table as stored is
    # the truth the pages are checked against.
    make_table(
        conn,
        f"CREATE TABLE h (a SMALLINT NOT NULL, b VARCHAR(8) NOT NULL, PRIMARY KEY (a, b)) "
        f"DEFAULT CHARSET=utf8mb4 COLLATE={collation}",
        "h",
        rows,
    )
    expected = keys_in_order(conn, db, "h", ["a", "b"])

    pages = read_pages(conn, raw, db, "h", ["a", "b"], page_size)

    assert [k for p in pages for k in p] == expected
    assert_even_pages(pages, len(expected), page_size)
