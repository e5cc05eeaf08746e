"""MySQL target without a server: LOAD DATA encoding decodes back exactly; type widening."""

from __future__ import annotations

import struct
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sluice.targets.mysql import _compatible, encode_load_data
from sluice.types import arrow_schema

# MySQL's LOAD DATA rules for FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n'
_UNESCAPE = {
    ord("0"): b"\x00",
    ord("b"): b"\b",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
    ord("Z"): b"\x1a",
}
TAB, NL, BACKSLASH = 0x09, 0x0A, 0x5C


def decode_load_data(data: bytes) -> list[list[bytes | None]]:
    """Reverse LOAD DATA escaping as the server does: rows of fields, None for \\N."""
    rows: list[list[bytes | None]] = []
    row: list[bytes | None] = []
    field = bytearray()
    is_null = False
    i = 0
    while i < len(data):
        c = data[i]
        if c == BACKSLASH:
            assert i + 1 < len(data), "dangling escape at end of file"
            nxt = data[i + 1]
            ends_field = i + 2 == len(data) or data[i + 2] in (TAB, NL)
            if nxt == ord("N") and not field and ends_field:
                is_null = True
            else:
                field += _UNESCAPE.get(nxt, bytes([nxt]))
            i += 2
            continue
        if c in (TAB, NL):
            row.append(None if is_null else bytes(field))
            field, is_null = bytearray(), False
            if c == NL:
                rows.append(row)
                row = []
        else:
            field.append(c)
        i += 1
    assert not row and not field and not is_null, "file must end with a newline"
    return rows


def test_decoder_follows_mysql_rules():
    assert decode_load_data(b"a\\tb\t\\N\t\\\\N\t\n") == [[b"a\tb", None, b"\\N", b""]]


def test_tricky_values_decode_back_exactly(column):
    cols = [
        column("id", "int", nullable=False),
        column("s", "varchar", "varchar(100)"),
        column("b", "blob", charset=None),
    ]
    rows = [
        {"id": 1, "s": "tab\there\nnew\rret", "b": b"\x00\t\n\r\\\x00"},
        {"id": 2, "s": "", "b": b""},
        {"id": 3, "s": None, "b": None},
        {"id": 4, "s": "\\N", "b": b"\\N"},
        {"id": 5, "s": "back\\slash\\", "b": b"\\"},
        {"id": 6, "s": "\U0001f600 caf\u00e9", "b": b"\xff\xfe"},
    ]
    data = encode_load_data(pa.Table.from_pylist(rows, schema=arrow_schema(cols)))
    assert data.endswith(b"\n")
    assert decode_load_data(data) == [
        [
            str(r["id"]).encode(),
            None if r["s"] is None else r["s"].encode(),
            r["b"],
        ]
        for r in rows
    ]


def test_numbers_and_times_are_written_as_exact_mysql_text(column):
    cols = [
        column("id", "bigint", "bigint unsigned", nullable=False),
        column("neg", "bigint"),
        column("amount", "decimal", "decimal(65,30)", precision=65, scale=30),
        column("price", "decimal", "decimal(10,2)", precision=10, scale=2),
        column("ratio", "float"),
        column("at", "datetime", "datetime(6)"),
        column("ts", "timestamp", "timestamp(6)"),
        column("d", "date"),
        column("y", "year"),
        column("flags", "bit", "bit(8)"),
        column("doc", "json", is_json=True),
    ]
    amount = Decimal("-12345678901234567890123456789012345.123456789012345678901234567890")
    row = {
        "id": 18446744073709551615,
        "neg": -9223372036854775808,
        "amount": amount,
        "price": Decimal("0.05"),
        "ratio": struct.unpack("<f", struct.pack("<f", 1.2345678))[0],
        "at": "2024-01-02 03:04:05.000006",
        "ts": "2038-01-19 03:14:07.999999",
        "d": "2024-02-29",
        "y": 2155,
        "flags": 255,
        "doc": '{"a": "t\\tb", "n": 1.10}',
    }
    zeros = dict(row, id=2, at="0000-00-00 00:00:00.000000", ts="0000-00-00 00:00:00.000000")
    zeros |= {"d": "0000-00-00", "y": 0}
    nulls = dict.fromkeys(row) | {"id": 1}
    data = encode_load_data(pa.Table.from_pylist([row, zeros, nulls], schema=arrow_schema(cols)))
    first, second, third = decode_load_data(data)
    assert first == [
        b"18446744073709551615",
        b"-9223372036854775808",
        str(amount).encode(),
        b"0.05",
        b"1.2345678",  # the shortest text that reads back as the same single-precision value
        b"2024-01-02 03:04:05.000006",
        b"2038-01-19 03:14:07.999999",
        b"2024-02-29",
        b"2155",
        b"255",
        b'{"a": "t\\tb", "n": 1.10}',
    ]
    # zero dates are written back as the server gave them
    assert second[5:9] == [
        b"0000-00-00 00:00:00.000000",
        b"0000-00-00 00:00:00.000000",
        b"0000-00-00",
        b"0000",
    ]
    assert third == [b"1"] + [None] * 10


def test_empty_table_encodes_to_nothing(column):
    cols = [column("id", "int")]
    assert encode_load_data(pa.Table.from_pylist([], schema=arrow_schema(cols))) == b""


@given(
    st.lists(
        st.tuples(
            st.none() | st.text(st.characters(codec="utf-8", exclude_categories=["Cs"])),
            st.none() | st.binary(),
        ),
        min_size=1,
        max_size=25,
    )
)
@example([("\\", b"\\"), ("\\N", b"\\N"), ("", b""), (None, None), ("\t\n\r\x00", b"\x00\t\n\r")])
@example([("\t", b"\n"), ("a", b"a"), ("b", b"b"), ("\\", b"\\")])  # slices with and without
def test_any_text_and_bytes_survive_load_data_encoding(values):
    schema = pa.schema(
        [
            pa.field("t", pa.string(), metadata={b"kind": b"text"}),
            pa.field("b", pa.binary(), metadata={b"kind": b"binary"}),
        ]
    )
    table = pa.table(
        [pa.array([t for t, _ in values], pa.string()), pa.array([b for _, b in values])],
        schema=schema,
    )
    expected = [[None if t is None else t.encode(), b] for t, b in values]
    assert decode_load_data(encode_load_data(table)) == expected
    # a slice (load encodes a page a slice at a time): only its own values decide its escapes
    for cut in {1, len(values) // 2}:
        part = table.slice(cut, len(values) // 2)
        assert decode_load_data(encode_load_data(part)) == expected[cut : cut + len(values) // 2]


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=20))
def test_doubles_are_written_with_enough_digits_to_read_back_the_same_value(values):
    schema = pa.schema([pa.field("f", pa.float64(), metadata={b"kind": b"float"})])
    rows = decode_load_data(encode_load_data(pa.table([pa.array(values)], schema=schema)))
    assert [float(r[0]) for r in rows] == values


@pytest.mark.parametrize(
    ("source", "target", "ok"),
    [
        ("int(11)", "int(11)", True),
        ("INT", "int", True),
        ("int(11)", "int", True),
        ("tinyint(4)", "bigint(20)", True),
        ("smallint unsigned", "int unsigned", True),
        ("bigint", "int", False),
        ("int unsigned", "bigint", False),
        ("int", "bigint unsigned", False),
        ("varchar(20)", "varchar(255)", True),
        ("varchar(255)", "varchar(20)", False),
        ("char(10)", "varchar(10)", True),
        ("char(10)", "char(9)", False),
        ("varchar(10)", "char(10)", False),
        ("tinytext", "longtext", True),
        ("mediumtext", "text", False),
        ("varchar(10)", "text", False),
        ("decimal(10,2)", "decimal(10,2)", True),
        ("decimal(12,2)", "decimal(10,2)", False),
        ("datetime(6)", "datetime", False),
        ("varchar(10)", "varbinary(10)", False),
    ],
)
def test_target_column_must_hold_every_source_value(source, target, ok):
    assert _compatible(source, target) is ok


@given(
    st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=20)
)
def test_floats_are_written_with_enough_digits_to_read_back_the_same_single(values):
    schema = pa.schema([pa.field("f", pa.float32(), metadata={b"kind": b"float"})])
    rows = decode_load_data(
        encode_load_data(pa.table([pa.array(values, pa.float32())], schema=schema))
    )
    assert [struct.unpack("<f", struct.pack("<f", float(r[0])))[0] for r in rows] == values
