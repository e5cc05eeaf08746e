"""Staging: page identity and object keys, the Arrow IPC page format, line buffers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from urllib.parse import quote, quote_plus

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sluice import staging
from sluice.staging import EXTRACTED, REJECTED, TRANSFORMED, PageRef

RUN_ID = st.from_regex(r"[A-Za-z0-9_.-]{1,30}", fullmatch=True)
TABLE = st.from_regex(r"[A-Za-z0-9_$]{1,64}", fullmatch=True)
STAGE_KIND = st.sampled_from(
    [(EXTRACTED, "mysql"), (TRANSFORMED, "mysql"), (TRANSFORMED, "dynamodb"), (REJECTED, "mysql")]
)


# ---------------------------------------------------------------- keys


def test_page_keys_name_run_stage_table_and_zero_padded_page():
    ref = PageRef("20240102-ab", "orders", 7)
    assert ref.key(EXTRACTED) == "runs/20240102-ab/extracted/orders/p000007.extracted.arrow"
    assert ref.key(TRANSFORMED) == "runs/20240102-ab/transformed/orders/p000007.transformed.arrow"
    assert (
        ref.key(TRANSFORMED, "dynamodb")
        == "runs/20240102-ab/transformed/orders/p000007.transformed.ddb.json.gz"
    )
    assert (
        ref.key(REJECTED, "dynamodb") == "runs/20240102-ab/rejected/orders/p000007.rejected.jsonl"
    )
    assert ref.label == "orders#7"


@given(RUN_ID, TABLE, st.integers(0, 10**7), STAGE_KIND)
def test_page_key_parses_back_to_the_same_page_and_stage_plain_or_url_encoded(
    run, table, page, stage_kind
):
    stage, kind = stage_kind
    ref = PageRef(run, table, page)
    key = ref.key(stage, kind)
    for form in (key, quote(key), quote_plus(key, safe="/")):
        assert PageRef.from_key(form) == (ref, stage)


def test_page_numbers_past_six_digits_still_parse():
    ref = PageRef("r1", "events", 1_234_567)
    assert ref.key(EXTRACTED) == "runs/r1/extracted/events/p1234567.extracted.arrow"
    assert PageRef.from_key(ref.key(EXTRACTED)) == (ref, EXTRACTED)


def test_url_encoded_dollar_in_table_name_is_decoded():
    assert PageRef.from_key("runs/r1/extracted/order%24lines/p000003.extracted.arrow") == (
        PageRef("r1", "order$lines", 3),
        EXTRACTED,
    )


@pytest.mark.parametrize(
    "key",
    [
        "runs/r1/contract.json",
        "runs/r1/plan/page-batches.json",
        "runs/r1/loaded/orders/p000001.extracted.arrow",
        "other/r1/extracted/orders/p000001.extracted.arrow",
        "runs/r1/extracted/orders/p12.extracted.arrow",
    ],
)
def test_keys_that_are_not_pages_are_refused(key):
    with pytest.raises(ValueError, match="not a Sluice page object key"):
        PageRef.from_key(key)


def test_page_ref_dict_round_trip():
    ref = PageRef("r1", "orders", 12)
    assert PageRef.from_dict(ref.to_dict()) == ref
    assert PageRef.from_dict({"run_id": "r1", "table": "orders", "page": "12"}) == ref


def test_run_level_keys_live_under_the_run_prefix():
    assert staging.run_prefix("r1") == "runs/r1/"
    assert staging.contract_key("r1").startswith(staging.run_prefix("r1"))
    assert staging.plan_batches_key("r1").startswith(staging.run_prefix("r1"))


# ---------------------------------------------------------------- Arrow IPC pages

DEC38_MAX = Decimal("9999999999999999999999999999.9999999999")
# a literal, not -DEC38_MAX: negation rounds to the decimal context's 28 digits
DEC38_MIN = Decimal("-9999999999999999999999999999.9999999999")
DEC65_MAX = Decimal("99999999999999999999999999999999999.999999999999999999999999999999")


def exact_schema() -> pa.Schema:
    meta = {b"mysql_type": b"x", b"kind": b"y"}
    return pa.schema(
        [
            pa.field("id", pa.uint64(), nullable=False, metadata={b"kind": b"int"}),
            pa.field("d38", pa.decimal128(38, 10), metadata=meta),
            pa.field("d65", pa.decimal256(65, 30), metadata={b"mysql_type": b"decimal(65,30)"}),
            pa.field("at", pa.timestamp("us")),
            pa.field("ts", pa.timestamp("us", tz="UTC")),
            pa.field("blob", pa.binary()),
            pa.field("text", pa.string()),
        ]
    )


def exact_rows() -> list[dict]:
    return [
        {
            "id": 18446744073709551615,
            "d38": DEC38_MAX,
            "d65": DEC65_MAX,
            "at": dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
            "ts": dt.datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
            "blob": b"\x00\x01\x00\xff\n\t\\",
            "text": "caf\u00e9 \U0001f600 \u4e2d\u6587 \x00",
        },
        {
            "id": 0,
            "d38": DEC38_MIN,
            "d65": Decimal("-0.000000000000000000000000000001"),
            "at": dt.datetime(1000, 1, 1),
            "ts": dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=dt.UTC),
            "blob": b"",
            "text": "",
        },
        {"id": 1, "d38": None, "d65": None, "at": None, "ts": None, "blob": None, "text": None},
    ]


def test_arrow_page_round_trip_keeps_every_value_type_and_metadata_exactly():
    schema = exact_schema()
    rows = exact_rows()
    batches = [
        pa.RecordBatch.from_pylist(rows[:2], schema=schema),
        pa.RecordBatch.from_pylist(rows[2:], schema=schema),
    ]
    data, count = staging.write_arrow(schema, batches)
    back = staging.read_arrow(data)

    assert count == 3
    assert back.schema.equals(schema, check_metadata=True)
    assert back.to_pylist() == rows
    assert back.column("d65").type == pa.decimal256(65, 30)
    assert back.column("blob").null_count == 1 and back.column("text").null_count == 1


def test_empty_page_round_trips_with_its_schema():
    schema = exact_schema()
    data, count = staging.write_arrow(schema, [])
    back = staging.read_arrow(data)
    assert count == 0
    assert back.num_rows == 0
    assert back.schema.equals(schema, check_metadata=True)


@given(
    st.lists(st.none() | st.binary(max_size=40), max_size=30),
    st.lists(st.none() | st.text(max_size=20), max_size=30),
)
def test_any_binary_and_text_values_round_trip_through_a_page(blobs, texts):
    n = min(len(blobs), len(texts))
    table = pa.table({"b": pa.array(blobs[:n], pa.binary()), "t": pa.array(texts[:n], pa.string())})
    data, count = staging.write_arrow(table.schema, table.to_batches())
    assert count == n
    assert staging.read_arrow(data).to_pydict() == {"b": blobs[:n], "t": texts[:n]}


# ---------------------------------------------------------------- line buffers


def test_lines_buffer_of_a_sliced_array_holds_only_the_slice():
    arr = pa.array([b"a\n", b"bb\n", b"ccc\n", b"dddd\n"])
    assert staging.lines_buffer(arr.slice(1, 2)) == b"bb\nccc\n"
    assert staging.lines_buffer(arr.slice(3)) == b"dddd\n"
    assert staging.lines_buffer(arr.slice(0, 1)) == b"a\n"
    assert staging.lines_buffer(arr.slice(2, 0)) == b""


def test_lines_buffer_of_large_binary_and_string_slices():
    values = [b"x\n", b"yy\n", b"zzz\n"]
    assert staging.lines_buffer(pa.array(values, pa.large_binary()).slice(1, 1)) == b"yy\n"
    assert staging.lines_buffer(pa.array(["\u00e9\n", "\U0001f600\n"], pa.string()).slice(1)) == (
        "\U0001f600\n".encode()
    )


def test_lines_buffer_of_chunked_sliced_array_joins_chunks_in_order():
    chunked = pa.chunked_array([pa.array([b"a\n", b"b\n"]).slice(1), pa.array([b"c\n", b"d\n"])])
    assert staging.lines_buffer(chunked) == b"b\nc\nd\n"


def test_lines_buffer_refuses_nulls():
    with pytest.raises(ValueError, match="null"):
        staging.lines_buffer(pa.array([b"a\n", None]))


@given(st.lists(st.binary(max_size=10), max_size=20), st.data())
def test_lines_buffer_equals_the_concatenated_slice(values, data):
    start = data.draw(st.integers(0, len(values)))
    length = data.draw(st.integers(0, len(values) - start))
    arr = pa.array(values, pa.binary()).slice(start, length)
    assert staging.lines_buffer(arr) == b"".join(values[start : start + length])


def test_gzip_lines_round_trip():
    lines = pa.array([b'{"Item":{"a":{"S":"1"}}}\n', b'{"Item":{"a":{"S":"2"}}}\n'])
    assert staging.gunzip_lines(staging.gzip_lines(lines.slice(1))) == [b'{"Item":{"a":{"S":"2"}}}']
