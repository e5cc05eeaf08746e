"""Source side without a server: key encoding, keyset range predicates, typing raw rows."""

from __future__ import annotations

import json
import sqlite3
import struct
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sluice.errors import SluiceError
from sluice.keys import PageRange
from sluice.source import (
    SourceTable,
    decode_key,
    encode_key,
    page_query,
    range_predicate,
    rows_to_batch,
)
from sluice.types import arrow_schema

KEY_VALUES = {
    "int": st.integers(-20, 20),
    "text": st.text(alphabet="aAb\u00e9\U0001f600", max_size=3),
    "blob": st.binary(max_size=3),
}
SQL_TYPE = {"int": "INTEGER", "text": "TEXT", "blob": "BLOB"}


@st.composite
def keyed_rows(draw):
    kinds = draw(st.lists(st.sampled_from(sorted(KEY_VALUES)), min_size=1, max_size=3))
    key_tuple = st.tuples(*[KEY_VALUES[k] for k in kinds])
    rows = draw(st.lists(key_tuple, unique=True, max_size=30))
    return kinds, rows, key_tuple


def sqlite_table(kinds: list[str], rows: list[tuple]) -> tuple[sqlite3.Connection, list[str]]:
    names = [f"k{i}" for i in range(len(kinds))]
    db = sqlite3.connect(":memory:")
    cols = ", ".join(f"`{n}` {SQL_TYPE[k]}" for n, k in zip(names, kinds, strict=True))
    db.execute(f"CREATE TABLE t ({cols})")
    db.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(kinds))})", rows)
    return db, names


def select(db, names, lo, hi) -> list[tuple]:
    where, params = range_predicate(names, lo, hi)
    return db.execute(f"SELECT * FROM t WHERE {where.replace('%s', '?')}", params).fetchall()


def transported(key: tuple | None) -> list | None:
    """A page boundary as the plan carries it: JSON-safe in the manifest and S3."""
    if key is None:
        return None
    return decode_key(json.loads(json.dumps(encode_key(list(key)))))


# ---------------------------------------------------------------- key encoding


def test_key_values_encode_json_safe_and_decode_exactly():
    key = [7, "caf\u00e9", b"\x00\xff\n", 18446744073709551615]
    encoded = encode_key(key)
    assert encoded[2] == {"b64": "AP8K"}
    assert decode_key(json.loads(json.dumps(encoded))) == key
    assert decode_key(None) is None


def test_page_range_dict_round_trip_keeps_open_ends():
    pr = PageRange(3, encode_key([b"\x00", 5]), None)
    back = PageRange.from_dict(json.loads(json.dumps(pr.to_dict())))
    assert back == pr
    assert decode_key(back.lo) == [b"\x00", 5]
    assert PageRange.from_dict({"page": "1"}) == PageRange(1, None, None)


# ---------------------------------------------------------------- keyset ranges


def test_range_predicate_with_open_ends_is_true():
    assert range_predicate(["id"], None, None) == ("TRUE", [])


def test_range_predicate_binds_values_and_quotes_identifiers():
    sql, params = range_predicate(["a", "b"], [1, "x"], [2, "y"])
    assert sql == (
        "((`a` > %s) OR (`a` = %s AND `b` > %s)) AND NOT ((`a` > %s) OR (`a` = %s AND `b` > %s))"
    )
    assert params == [1, 1, "x", 2, 2, "y"]


def test_range_predicate_refuses_identifiers_that_are_not_plain():
    with pytest.raises(ValueError, match="not a plain MySQL identifier"):
        range_predicate(["id`; DROP TABLE t; --"], [1], None)


@given(keyed_rows(), st.data())
def test_range_predicate_selects_exactly_lo_lt_key_le_hi(case, data):
    kinds, rows, key_tuple = case
    lo = data.draw(st.none() | key_tuple)
    hi = data.draw(st.none() | key_tuple)
    db, names = sqlite_table(kinds, rows)
    got = select(db, names, transported(lo), transported(hi))
    want = [r for r in rows if (lo is None or r > lo) and (hi is None or r <= hi)]
    assert sorted(got) == sorted(want)


@given(keyed_rows(), st.data())
def test_pages_cut_at_row_keys_cover_every_row_exactly_once(case, data):
    kinds, rows, _ = case
    ordered = sorted(rows)
    cuts = sorted(data.draw(st.sets(st.sampled_from(ordered))) if ordered else set())
    bounds = [None, *cuts, None]
    db, names = sqlite_table(kinds, rows)
    seen = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        page = select(db, names, transported(lo), transported(hi))
        assert all(lo is None or r > lo for r in page)
        seen.extend(page)
    assert sorted(seen) == ordered


def test_page_query_orders_by_key_and_casts_bit_and_float_columns(column):
    table = SourceTable(
        "flags",
        "table",
        (
            column("id", "int", "int", nullable=False),
            column("f", "bit", "bit(8)"),
            column("r", "float"),
        ),
        ("id",),
        0,
    )
    sql, params = page_query("shop", table, ["id"], [10], None)
    assert sql == (
        "SELECT `id`, CAST(`f` AS UNSIGNED), CAST(`r` AS DOUBLE) FROM `shop`.`flags` "
        "WHERE ((`id` > %s)) ORDER BY `id`"
    )
    assert params == [10]


# ---------------------------------------------------------------- raw rows to Arrow


def test_raw_driver_values_are_staged_exactly(column):
    cols = [
        column("id", "bigint", "bigint unsigned", nullable=False),
        column("amount", "decimal", "decimal(65,30)", precision=65, scale=30),
        column("price", "decimal", "decimal(10,2)", precision=10, scale=2),
        column("ratio", "float"),
        column("at", "datetime", "datetime(6)"),
        column("ts", "timestamp", "timestamp(6)"),
        column("d", "date"),
        column("t", "time"),
        column("y", "year"),
        column("flags", "bit", "bit(8)"),
        column("photo", "blob", charset=None),
        column("name", "varchar", "varchar(20)"),
    ]
    amount = "12345678901234567890123456789012345.123456789012345678901234567890"
    rows = [
        (
            "18446744073709551615",
            amount,
            "-0.05",
            "1.2345677614212036",  # CAST(FLOAT 1.2345678 AS DOUBLE): the stored float, whole
            "2024-02-29 12:34:56.500000",
            "1970-01-01 00:00:00.000001",
            "2024-02-29",
            "-838:59:59",
            "2155",
            "255",
            b"\x00\xff",
            "\U0001f600",
        ),
        (
            "0",
            "0E-30",
            "0.00",
            "-3.4028234663852886e38",
            "0000-00-00 00:00:00",
            "0000-00-00 00:00:00",
            "0000-00-00",
            "00:00:00",
            "0000",
            "0",
            b"",
            "",
        ),
        (None,) * 12,
    ]
    batch = rows_to_batch(rows, cols, arrow_schema(cols), "t")
    assert batch.schema == arrow_schema(cols)
    first, zeros, nulls = batch.to_pylist()
    assert first == {
        "id": 18446744073709551615,
        "amount": Decimal(amount),
        "price": Decimal("-0.05"),
        "ratio": float32(1.2345678),
        "at": "2024-02-29 12:34:56.500000",
        "ts": "1970-01-01 00:00:00.000001",
        "d": "2024-02-29",
        "t": "-838:59:59",
        "y": 2155,
        "flags": 255,
        "photo": b"\x00\xff",
        "name": "\U0001f600",
    }
    # zero dates, which no Arrow date or timestamp can hold, stay the server's text
    assert (zeros["at"], zeros["ts"], zeros["d"]) == (
        "0000-00-00 00:00:00",
        "0000-00-00 00:00:00",
        "0000-00-00",
    )
    assert zeros["ratio"] == -float32(3.4028234663852886e38)
    assert (zeros["y"], zeros["amount"]) == (0, Decimal(0))
    assert set(nulls.values()) == {None}
    assert batch.column("amount").type == pa.decimal256(65, 30)
    assert batch.column("ratio").type == pa.float32()


@pytest.mark.parametrize(
    ("data_type", "column_type", "text"),
    [
        ("date", "date", "1000-01-01"),
        ("date", "date", "2024-02-00"),  # zero day, allowed unless NO_ZERO_IN_DATE
        ("datetime", "datetime", "9999-12-31 23:59:59"),
        ("datetime", "datetime(1)", "2024-02-29 12:34:56.5"),
        ("datetime", "datetime(3)", "2024-02-29 12:34:56.500"),
        ("datetime", "datetime(6)", "0000-00-00 00:00:00.000000"),
        ("timestamp", "timestamp(6)", "2038-01-19 03:14:07.999999"),
    ],
)
def test_dates_and_times_are_staged_as_the_servers_text_at_every_precision(
    column, data_type, column_type, text
):
    cols = [column("v", data_type, column_type)]
    batch = rows_to_batch([(text,)], cols, arrow_schema(cols), "t")
    assert batch.column(0).to_pylist() == [text]


def float32(x: float) -> float:
    """x narrowed to single precision, as a FLOAT column stores it."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


@pytest.mark.parametrize(
    ("data_type", "column_type", "precision", "scale", "raw"),
    [
        ("bigint", "bigint unsigned", None, None, "-1"),
        ("int", "int", None, None, "2147483648"),
        ("int", "int", None, None, "12abc"),
        ("decimal", "decimal(10,2)", 10, 2, "1.005"),  # would need rounding
    ],
)
def test_a_value_that_cannot_be_staged_exactly_names_table_and_column(
    column, data_type, column_type, precision, scale, raw
):
    cols = [column("v", data_type, column_type, precision=precision, scale=scale)]
    with pytest.raises(SluiceError, match=r"^orders\.v \("):
        rows_to_batch([(raw,)], cols, arrow_schema(cols), "orders")
