"""Lines of a row without a server: the header widths, and lines whose header lies."""

from __future__ import annotations

import pyarrow as pa
import pytest
from sluice import rowlines
from sluice.errors import SluiceError


def line(lay: rowlines.LineLayout, *values: bytes | None) -> bytes:
    """A line as select_line makes the server build it."""
    lengths = [lay.header + 1] + [0 if v is None else len(v) + 1 for v in values]
    fields = zip(lengths, lay.bases, lay.widths, strict=True)
    head = "".join(f"{n + base:0{w}d}" for n, base, w in fields)
    return head.encode() + b"".join(v for v in values if v is not None)


@pytest.fixture
def lay(column) -> rowlines.LineLayout:
    return rowlines.layout([column("id", "int"), column("v", "varchar", "varchar(5)")])


def test_header_fields_are_wide_enough_for_each_columns_longest_value(column):
    cols = [
        column("i", "bigint"),
        column("v", "varchar", "varchar(300)"),  # 1,200 bytes of utf8mb4
        column("b", "varbinary", "varbinary(9)", charset="binary"),
        column("t", "text", "text"),
        column("j", "longtext", "longtext", is_json=True),
    ]
    lay = rowlines.layout(cols)
    assert lay.widths[1:] == (3, 5, 3, 7, 11)  # a leading 1, then digits for the longest
    assert lay.bases[1:] == (100, 10_000, 100, 1_000_000, 10_000_000_000)
    assert len(str(lay.header + 1)) == lay.widths[0]


def test_lines_split_into_the_columns_the_driver_would_hand_over(lay):
    lines = [line(lay, b"7", b"abc"), line(lay, b"-1", None), line(lay, b"0", b"")]
    got = rowlines.split(pa.array(lines, pa.large_binary()), lay)
    assert [a.to_pylist() for a in got] == [["7", "-1", "0"], ["abc", None, ""]]
    assert [a.type for a in got] == [pa.string(), pa.string()]


@pytest.mark.parametrize(
    "bad",
    [
        lambda good: good + b"x",  # longer than its header says
        lambda good: good[:-1],  # shorter
        lambda good: good[:3],  # shorter than the header itself
        lambda good: b"xx" + good[2:],  # a header that is not digits
    ],
)
def test_a_line_whose_header_does_not_add_up_is_refused(lay, bad):
    good = line(lay, b"7", b"abc")
    lines = pa.array([good, bad(good)], pa.large_binary())
    with pytest.raises(rowlines.LineError):
        rowlines.split(lines, lay)


def test_text_that_is_not_utf8_names_its_column(lay):
    lines = pa.array([line(lay, b"7", b"\xff")], pa.large_binary())
    with pytest.raises(SluiceError, match=r"^v \(varchar\(5\)\): Invalid UTF8") as exc:
        rowlines.split(lines, lay)
    assert not isinstance(exc.value, rowlines.LineError)


def test_a_header_field_below_its_base_is_refused_even_if_the_lengths_add_up(lay):
    # id "7" then v "abc": fields 102 and 104 (bases 100: lengths 1 and 3, each plus one).
    # With 100 moved from the first field to the second (002 and 204) the lengths, -99 and 103,
    # still add up to the line's 4 bytes of values.
    good = line(lay, b"7", b"abc")
    own = lay.widths[0]
    assert good[own : own + 6] == b"102104"
    bad = good[:own] + b"002204" + good[own + 6 :]
    with pytest.raises(rowlines.LineError, match="line 2 .* outside its column.s range"):
        rowlines.split(pa.array([good, bad], pa.large_binary()), lay)


def test_a_header_field_at_twice_its_base_is_refused(lay):
    good = line(lay, b"7", b"abc")
    own = lay.widths[0]
    bad = good[:own] + b"2" + good[own + 1 :]  # 202: a field of a length past its bound
    with pytest.raises(rowlines.LineError, match="line 1 .* outside its column's range"):
        rowlines.split(pa.array([bad], pa.large_binary()), lay)
