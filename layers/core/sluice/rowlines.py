"""Rows read as one line each, joined by the server, split into columns by Arrow.

pymysql decodes every value of every row in Python, which made it most of the extract stage's
CPU. Asked for one binary string a row instead, it decodes one value a row, and Arrow's
kernels cut the lines into the columns the text protocol would have sent. A line is a header
of decimal lengths, then the values back to back:

    <header length + 1> <B1 + len(v1) + 1> ... <BK + len(vK) + 1> v1 v2 ... vK

A column's header field has a width fixed per column: Bk is 10^d, where d digits hold the
column's longest value's length + 1, so the field is always d + 1 digits (a leading 1) and
the server adds a number instead of padding one with LPAD, which took a fifth of its CPU for
the lines (1M bench rows: 1.37-1.50 s against 1.72-1.76 s, bench/RESULTS.md). Bk alone means
NULL, which adds no bytes. Nothing is escaped, so every byte value travels as it is, and every
line's header is checked against the line's own length.

A line longer than the server's max_allowed_packet comes back NULL (CONCAT_WS's overflow),
and a line that does not match its header raises LineError; either way the reader reads the
rest of the page column by column (sluice.source.read_page).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from .errors import SluiceError
from .types import Column


class LineError(SluiceError):
    """A line's header does not describe the line: the server measured a value (LENGTH) other
    than it joined it, or a value was longer than its column's bound. Never seen; the reader
    reads such rows column by column."""


@dataclass(frozen=True, slots=True)
class LineLayout:
    """Where each column's length sits in a line's header."""

    columns: tuple[Column, ...]
    widths: tuple[int, ...]  # digits of each header field: the header's own, then each column's

    @property
    def header(self) -> int:
        return sum(self.widths)

    @property
    def bases(self) -> tuple[int, ...]:
        """What each header field adds to its length + 1 (the header's own field: nothing)."""
        return (0, *(10 ** (w - 1) for w in self.widths[1:]))


def layout(columns: Sequence[Column]) -> LineLayout:
    widths = [len(str(c.max_line_bytes() + 1)) + 1 for c in columns]
    rest, own = sum(widths), 1
    while len(str(rest + own + 1)) > own:
        own += 1
    return LineLayout(tuple(columns), (own, *widths))


def select_line(lay: LineLayout) -> str:
    """The SQL expression of a row's line."""
    exprs = [c.line_expr() for c in lay.columns]
    own = lay.widths[0]
    head = [f"'{lay.header + 1:0{own}d}'"]
    head += [
        f"IFNULL(LENGTH({e}) + {base + 1}, {base})"
        for e, base in zip(exprs, lay.bases[1:], strict=True)
    ]
    # CONCAT_WS skips NULL values, which the header already marks.
    return f"CAST(CONCAT_WS(x'', {', '.join(head + exprs)}) AS BINARY)"


def split(lines: pa.Array, lay: LineLayout) -> list[pa.Array]:
    """The columns of `lines` (large_binary, no nulls, offset 0), each as the driver would
    have handed it over: Column.wire_type(), text validated as UTF-8.

    Raises LineError naming the first line whose header does not add up to its length, and
    SluiceError naming the column whose text is not UTF-8.
    """
    n, per_row = len(lines), len(lay.columns) + 1
    if n == 0:
        return [pa.array([], type=c.wire_type()) for c in lay.columns]
    line_ends = _offsets(lines)
    if lines.null_count or lines.offset or line_ends[0].as_py() != 0:
        raise ValueError("split() takes a fresh large_binary array without nulls")
    heads = pc.binary_slice(lines, 0, lay.header)
    head_ends = _offsets(heads)
    if head_ends[0].as_py() != 0 or head_ends[n].as_py() != n * lay.header:
        raise LineError(_first_mismatch(pc.less(pc.binary_length(lines), lay.header)))
    fields = pa.Array.from_buffers(
        pa.large_string(),
        n * per_row,
        [None, _header_offsets(lay.widths, n), _data(heads)],
    )
    try:
        fields = pc.cast(fields, pa.int64())  # digits only, or it fails
    except pa.ArrowInvalid as exc:
        raise LineError(f"a line's header holds something other than digits: {exc}") from exc
    lengths = pc.subtract(fields, _tiled(lay.bases, n))
    # A field is its base plus less than the base (its leading 1): one below, or at twice its
    # base or more, is no length at all. (A value longer than its column's bound would widen
    # its field and shift the rest; bounds are the column's declared or stored maximum and
    # the packet's, so none is, and the line-length check below would still see the shift
    # unless the shifted fields added up by chance.)
    bad = pc.or_(pc.less(lengths, 0), pc.greater_equal(lengths, _tiled(_bounds(lay), n)))
    if pc.any(bad).as_py():
        i = pc.index(bad, True).as_py() // per_row
        raise LineError(
            f"line {i + 1} of a chunk read from the server has a header field outside its "
            "column's range"
        )
    valid = pc.not_equal(lengths, 0)
    ends = pc.cumulative_sum(pc.subtract(lengths, pc.cast(valid, pa.int64())))
    row_ends = pc.list_element(pa.FixedSizeListArray.from_arrays(ends, per_row), per_row - 1)
    mismatch = pc.not_equal(row_ends, line_ends.slice(1))
    if pc.any(mismatch).as_py():
        raise LineError(_first_mismatch(mismatch))
    starts = pa.concat_arrays([pa.array([0], pa.int64()), ends])
    values = pa.Array.from_buffers(
        pa.large_binary(),
        n * per_row,
        [valid.buffers()[1], starts.buffers()[1], _data(lines)],
    )
    rows = pa.FixedSizeListArray.from_arrays(values, per_row)
    out = []
    for j, c in enumerate(lay.columns):
        try:
            out.append(pc.cast(pc.list_element(rows, j + 1), c.wire_type()))
        except pa.ArrowInvalid as exc:
            raise SluiceError(f"{c.name} ({c.column_type}): {exc}") from exc
    return out


def _offsets(arr: pa.Array) -> pa.Array:
    """The n+1 value offsets of a large_binary array, as int64."""
    return pa.Array.from_buffers(pa.int64(), len(arr) + 1, [None, arr.buffers()[1]], arr.offset)


def _data(arr: pa.Array) -> pa.Buffer:
    return arr.buffers()[2] or pa.py_buffer(b"")


def _header_offsets(widths: tuple[int, ...], rows: int) -> pa.Buffer:
    """Offsets cutting `rows` headers, back to back, into their fields."""
    steps = pa.concat_arrays([pa.array([0], pa.int64()), _tiled(widths, rows)])
    return pc.cumulative_sum(steps).buffers()[1]


def _bounds(lay: LineLayout) -> tuple[int, ...]:
    """What each header field's length + 1 stays below: its base (the header's own field: a
    number of its width)."""
    return (10 ** lay.widths[0], *lay.bases[1:])


def _tiled(values: tuple[int, ...], rows: int) -> pa.Array:
    """`values` repeated `rows` times, as int64."""
    pattern = struct.pack(f"={len(values)}q", *values)
    return pa.Array.from_buffers(
        pa.int64(), rows * len(values), [None, pa.py_buffer(pattern * rows)]
    )


def _first_mismatch(bad: pa.Array) -> str:
    i = pc.index(bad, True).as_py()
    return f"line {i + 1} of a chunk read from the server does not match its header"
