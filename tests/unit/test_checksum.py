"""Page checksums: the same rows give the same sum however they are batched; any change to a
value, a NULL or the row order gives another."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sluice import checksum, staging
from sluice.errors import SluiceError

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("qty", pa.uint16()),
        pa.field("price", pa.decimal128(12, 2)),
        pa.field("ratio", pa.float32()),
        pa.field("paid", pa.bool_()),
        pa.field("note", pa.string()),
        pa.field("blob", pa.binary()),
        pa.field("big", pa.large_string()),
    ]
)

ROW = st.fixed_dictionaries(
    {
        "qty": st.none() | st.integers(0, 65535),
        "price": st.none()
        | st.decimals(-(10**9), 10**9, places=2, allow_nan=False, allow_infinity=False),
        "ratio": st.none() | st.floats(width=32, allow_nan=False),
        "paid": st.none() | st.booleans(),
        "note": st.none() | st.text(max_size=12),
        "blob": st.none() | st.binary(max_size=12),
        "big": st.none() | st.text(max_size=5),
    }
)


ONE = {"qty": 1, "price": None, "ratio": 0.5, "paid": True, "note": "a", "blob": b"", "big": "b"}


def page(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{"id": i, **r} for i, r in enumerate(rows)], schema=SCHEMA)


def rechunked(table: pa.Table, cuts: list[int]) -> pa.Table:
    """The same rows as several batches, each a slice of the original (offsets kept)."""
    bounds = sorted({0, table.num_rows, *(c % (table.num_rows + 1) for c in cuts)})
    parts = [table.slice(a, b - a) for a, b in zip(bounds, bounds[1:], strict=False)]
    return pa.concat_tables(parts) if parts else table


@settings(max_examples=60, deadline=None)
@given(st.lists(ROW, max_size=30), st.lists(st.integers(0, 40), max_size=5))
def test_the_same_rows_sum_alike_however_they_are_batched(rows, cuts):
    t = page(rows)
    again = rechunked(t, cuts)
    assert checksum.page_sum(again) == checksum.page_sum(t)
    streamed = checksum.PageSum(SCHEMA)
    for batch in again.to_batches(max_chunksize=3):
        streamed.update(batch)
    assert streamed.hexdigest() == checksum.page_sum(t)
    # Written and read back through the staging format: still the same rows.
    body, n, summed = checksum.write_arrow(SCHEMA, again.to_batches(max_chunksize=4))
    assert (n, summed) == (len(rows), checksum.page_sum(t))
    assert checksum.page_sum(staging.read_arrow(body)) == summed


BASE = [
    {
        "qty": 1,
        "price": Decimal("2.50"),
        "ratio": 0.5,
        "paid": True,
        "note": "a",
        "blob": b"\x00",
        "big": "x",
    },
    {
        "qty": None,
        "price": Decimal("10.00"),
        "ratio": None,
        "paid": False,
        "note": None,
        "blob": b"",
        "big": "",
    },
    {
        "qty": 3,
        "price": None,
        "ratio": -1.25,
        "paid": None,
        "note": "ccc",
        "blob": None,
        "big": "yz",
    },
]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda rows: rows[0].update(note="b"), id="one byte of text"),
        pytest.param(lambda rows: rows[0].update(blob=b"\x01"), id="one byte of binary"),
        pytest.param(lambda rows: rows[0].update(price=Decimal("2.51")), id="a decimal digit"),
        pytest.param(lambda rows: rows[1].update(qty=0), id="a NULL becomes 0"),
        pytest.param(lambda rows: rows[2].update(note=None), id="a value becomes NULL"),
        pytest.param(lambda rows: rows[1].update(note=""), id="NULL text becomes empty"),
        pytest.param(lambda rows: rows[0].update(paid=False), id="a boolean"),
        pytest.param(lambda rows: rows[2].update(ratio=-1.0), id="a float"),
        pytest.param(lambda rows: rows.reverse(), id="row order"),
        pytest.param(lambda rows: rows.pop(), id="a row fewer"),
        pytest.param(lambda rows: rows.append(dict(rows[0])), id="a row more"),
        # Bytes moved from one value to its neighbour: lengths are summed apart from data.
        pytest.param(
            lambda rows: (rows[0].update(note="ac"), rows[2].update(note="cc")), id="a shifted byte"
        ),
    ],
)
def test_any_change_to_the_rows_changes_the_sum(change):
    rows = [dict(r) for r in BASE]
    change(rows)
    # Ids are numbered afresh: only the changed values (or their order) differ.
    assert checksum.page_sum(page(rows)) != checksum.page_sum(page(BASE))


def test_a_column_renamed_or_retyped_changes_the_sum():
    t = pa.table({"a": pa.array([1, 2], pa.int32())})
    assert checksum.page_sum(t) != checksum.page_sum(t.rename_columns(["b"]))
    assert checksum.page_sum(t) != checksum.page_sum(t.cast(pa.schema([("a", pa.int64())])))


def test_an_empty_page_has_a_sum_of_its_own():
    empty = SCHEMA.empty_table()
    assert checksum.page_sum(empty) == checksum.page_sum(page([]))
    assert checksum.page_sum(empty) != checksum.page_sum(page(BASE[:1]))


def test_a_column_type_no_page_holds_is_refused_by_name():
    t = pa.table({"tags": pa.array([[1], [2]], pa.list_(pa.int64()))})
    with pytest.raises(SluiceError, match="column 'tags'"):
        checksum.page_sum(t)


def test_key_order_sums_alike_whatever_order_the_rows_came_in():
    t = pa.table({"k": ["b", "a", "C"], "v": [2, 1, 3]})
    shuffled = t.take([2, 0, 1])
    assert checksum.key_ordered_sum(t, ["k"]) == checksum.key_ordered_sum(shuffled, ["k"])
    assert checksum.key_ordered(t, ["k"]).column("k").to_pylist() == ["C", "a", "b"]


def test_rows_the_target_refused_are_left_out_of_the_loaded_sum():
    rows = pa.table({"id": [1, 2, 3], "v": ["x", "y", "z"]})
    assert checksum.rows_written_sum(rows, ["id"], [{"id": 2}]) == checksum.key_ordered_sum(
        rows.filter(pa.array([True, False, True])), ["id"]
    )
    assert checksum.rows_written_sum(rows, ["id"], []) == checksum.key_ordered_sum(rows, ["id"])


def test_item_lines_sum_as_staged_and_without_refused_items():
    items = [
        {"Item": {"PK": {"S": f"U#{i}"}, "SK": {"S": "P"}, "n": {"N": str(i)}}} for i in range(3)
    ]
    lines = pa.array([json.dumps(i).encode() + b"\n" for i in items], pa.binary())
    staged = gzip.decompress(staging.gzip_lines(lines))
    assert checksum.lines_sum(staging.lines_buffer(lines)) == checksum.lines_sum(staged)
    assert checksum.lines_written_sum(staged, ["PK", "SK"], []) == checksum.lines_sum(staged)
    without = b"".join(json.dumps(i).encode() + b"\n" for i in (items[0], items[2]))
    refused = [{"PK": "U#1", "SK": "P"}]
    assert checksum.lines_written_sum(staged, ["PK", "SK"], refused) == checksum.lines_sum(without)


def test_sums_are_tagged_and_legacy_sums_are_told_apart_and_still_made():
    t = page([ONE])
    now, before = checksum.page_sum(t), checksum.page_sum(t, old=True)
    assert now.startswith(checksum.TAG) and len(now) == len(checksum.TAG) + 32
    assert len(before) == 32 and int(before, 16) >= 0  # BLAKE2b-128, as earlier releases wrote
    assert (checksum.legacy(now), checksum.legacy(before), checksum.legacy(None)) == (
        False,
        True,
        False,
    )
    assert checksum.page_sum(t.slice(0, 0), old=True) != checksum.page_sum(t.slice(0, 0))
    lines = b'{"Item": {}}\n'
    assert checksum.lines_sum(lines).startswith(checksum.TAG) and checksum.legacy(
        checksum.lines_sum(lines, old=True)
    )
    summed = checksum.PageSum(t.schema, old=True)
    summed.update(t)
    assert summed.hexdigest() == before
