"""Page checksums: a digest of a page's rows in one canonical encoding, made from whole Arrow
buffers (no Python per row), the same however the page is cut into batches.

The encoding, per column in schema order: the column's name and Arrow type, the row numbers
of its NULLs, then its non-NULL values back to back: fixed-width values as their bytes
(booleans one byte each), variable-width values as their lengths (int64) and, separately,
their bytes. Each of those three streams is hashed as batches arrive, so a page is summed
while it streams (extract) or after (transform, load, verification), with the same result.
Values are compared exactly: pages whose columns differ in any byte of any row (DECIMAL
digits and scale, float bits, text bytes) have different sums, but for a 128-bit hash's
chance collision. The hash (XXH3, see TAG) is not keyed or cryptographic: it catches a page
damaged, replaced or changed by mistake, not one forged by someone who can write the staging
bucket (the stack's IAM keeps that to its own functions).

Pages of item lines (DynamoDB wire JSON, one item a line) are summed as their bytes
(`lines_sum`): each line ends with a newline no JSON value holds, so the bytes spell the lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from . import staging
from .errors import SluiceError

DIGEST_BYTES = 16
# A sum's text starts with TAG: xxHash's XXH3, 128 bits, which hashes a page's bytes at memory
# speed (a 50,000-row bench page: 1.6 ms to sum against 11.4 ms with BLAKE2b, whose hashing was
# nearly all of it). A sum without the tag is a legacy one (BLAKE2b-128), recorded by an
# earlier Sluice: a run that was under way when its stack was upgraded still has them, and a
# stage or verification checking against one sums its own side the legacy way (`legacy`).
TAG = "x3:"


def legacy(recorded: str | None) -> bool:
    """Whether a recorded sum is a legacy (BLAKE2b) one, to be checked against the same."""
    return recorded is not None and not recorded.startswith(TAG)


class _Xxh3:
    """XXH3-128 with a personalization: the person's bytes (length-prefixed) hashed first."""

    __slots__ = ("h",)

    def __init__(self, person: bytes | None = None, h=None):
        if h is None:
            h = xxhash.xxh3_128()
            h.update(len(person).to_bytes(8, "little") + person)
        self.h = h

    def update(self, data) -> None:
        self.h.update(data)

    def copy(self) -> _Xxh3:
        return _Xxh3(h=self.h.copy())

    def digest(self) -> bytes:
        return self.h.digest()

    def hexdigest(self) -> str:
        return TAG + self.h.hexdigest()


def _hasher(person: bytes, old: bool = False):
    if old:
        return hashlib.blake2b(digest_size=DIGEST_BYTES, person=person)
    return _Xxh3(person)


def _lengths_bytes(*values: int) -> bytes:
    return b"".join(v.to_bytes(8, "little", signed=False) for v in values)


def _text(s: str) -> bytes:
    b = s.encode()
    return _lengths_bytes(len(b)) + b


class _ColumnSum:
    """The three streams of one column: NULL row numbers, values (or lengths), bytes."""

    __slots__ = ("field", "old", "nulls", "values", "data")

    def __init__(self, field: pa.Field, old: bool = False):
        self.field, self.old = field, old
        self.nulls = _hasher(b"sluice-nulls", old)
        self.values = _hasher(b"sluice-values", old)
        self.data = _hasher(b"sluice-data", old)

    def update(self, arr: pa.Array, first_row: int) -> None:
        if len(arr) == 0:
            return
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if arr.null_count:
            rows = pc.add(pc.indices_nonzero(pc.is_null(arr)), pa.scalar(first_row, pa.uint64()))
            self.nulls.update(_values_buffer(rows, 8))
            arr = arr.drop_null()
            if len(arr) == 0:
                return
        t = arr.type
        if pa.types.is_boolean(t):
            self.values.update(_values_buffer(pc.cast(arr, pa.uint8()), 1))
        elif _is_var_width(t):
            if pa.types.is_binary_view(t) or pa.types.is_string_view(t):
                arr = pc.cast(arr, pa.large_binary())
            lengths = pc.cast(pc.binary_length(arr), pa.int64())
            self.values.update(_values_buffer(lengths, 8))
            self.data.update(var_data(arr))
        else:
            try:
                width = t.bit_width // 8
            except ValueError:
                width = 0
            if width == 0:
                raise SluiceError(
                    f"column {self.field.name!r} is {t}, which a page checksum cannot sum: "
                    "pages hold MySQL values (numbers, text, bytes)"
                )
            self.values.update(_values_buffer(arr, width))

    def digest(self) -> bytes:
        h = _hasher(b"sluice-column", self.old)
        h.update(_text(self.field.name))
        h.update(_text(str(self.field.type)))
        for part in (self.nulls, self.values, self.data):
            h.update(part.digest())
        return h.digest()


def _is_var_width(t: pa.DataType) -> bool:
    return (
        pa.types.is_binary(t)
        or pa.types.is_string(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_string_view(t)
    )


def _values_buffer(arr: pa.Array, width: int) -> pa.Buffer:
    """The bytes of a fixed-width array's values, without its offset or padding (zero copy)."""
    return arr.buffers()[1].slice(arr.offset * width, len(arr) * width)


def var_data(arr: pa.Array) -> pa.Buffer:
    """The bytes of a variable-width array's values back to back (zero copy)."""
    _, offsets, data = arr.buffers()[:3]
    wide = pa.types.is_large_binary(arr.type) or pa.types.is_large_string(arr.type)
    view = memoryview(offsets).cast("q" if wide else "i")
    start, end = view[arr.offset], view[arr.offset + len(arr)]
    if data is None or end == start:
        return pa.py_buffer(b"")
    return data.slice(start, end - start)


class PageSum:
    """The checksum of a page of `schema`, fed batch by batch (see the module docstring)."""

    def __init__(self, schema: pa.Schema, old: bool = False):
        self.schema, self.old = schema, old  # old: a legacy sum (see TAG)
        self.rows = 0
        self._columns = [_ColumnSum(f, old) for f in schema]

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_columns != len(self._columns):
            raise SluiceError(
                f"page checksum: a batch of {batch.num_columns} columns for a schema of "
                f"{len(self._columns)}"
            )
        for col, arr in zip(self._columns, batch.columns, strict=True):
            chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
            first = self.rows
            for chunk in chunks:
                col.update(chunk, first)
                first += len(chunk)
        self.rows += batch.num_rows

    def through(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """The batches, unchanged, each summed as it passes (for a page that streams)."""
        for b in batches:
            self.update(b)
            yield b

    def hexdigest(self) -> str:
        h = _hasher(b"sluice-page-v1", self.old)
        h.update(_lengths_bytes(self.rows, len(self._columns)))
        for col in self._columns:
            h.update(col.digest())
        return h.hexdigest()


def page_sum(page: pa.Table | pa.RecordBatch, old: bool = False) -> str:
    """The checksum of a whole page (`old`: a legacy one, see TAG)."""
    s = PageSum(page.schema, old)
    s.update(page)
    return s.hexdigest()


def write_arrow(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> tuple[bytes, int, str]:
    """staging.write_arrow that also sums the page as it streams: (bytes, rows, checksum)."""
    s = PageSum(schema)
    body, rows = staging.write_arrow(schema, s.through(batches))
    return body, rows, s.hexdigest()


def lines_sum(buffer: bytes | pa.Buffer, old: bool = False) -> str:
    """The checksum of item lines, given as their newline-terminated bytes back to back
    (`staging.lines_buffer`, or a staged object's decompressed body); `old`: a legacy one."""
    h = lines_hasher(old)
    h.update(buffer)
    return h.hexdigest()


def lines_hasher(old: bool = False):
    """lines_sum's hash, to feed a page's lines a piece at a time (update, hexdigest)."""
    return _hasher(b"sluice-lines-v1", old)


def key_ordered(rows: pa.Table, key: Sequence[str]) -> pa.Table:
    """The rows in key order, as Arrow orders the values (bytes for text): the order the
    loaded-rows sum and verification's read-back both use, whatever a server's collation."""
    if rows.num_rows < 2:
        return rows
    order = pc.sort_indices(rows, sort_keys=[(k, "ascending") for k in key])
    return rows.take(order)


def key_ordered_sum(rows: pa.Table, key: Sequence[str]) -> str:
    """The checksum of rows in key order (see `key_ordered`)."""
    return page_sum(key_ordered(rows, key))


# ---------------------------------------------------------------- what a load wrote


def rows_written_sum(rows: pa.Table, key: Sequence[str], refused: Sequence[dict]) -> str:
    """The key-ordered checksum of the rows a MySQL load wrote: `rows` without those the
    target refused (`refused`: their keys, as targets.mysql reports them). What verification
    compares the target's rows with."""
    if refused:
        gone = {tuple(k[c] for c in key) for k in refused}
        keep = [tuple(r[c] for c in key) not in gone for r in rows.select(list(key)).to_pylist()]
        rows = rows.filter(pa.array(keep, pa.bool_()))
    return key_ordered_sum(rows, key)


def item_key(item: dict, key_names: Sequence[str]) -> tuple:
    """An item's key values (wire JSON `{"S": ...}` unwrapped), as the DynamoDB writer reports
    a refused item's key."""
    return tuple(next(iter(item[k].values())) for k in key_names if k in item)


def lines_written_sum(body: bytes, key_names: Sequence[str], refused: Sequence[dict]) -> str:
    """The checksum of the item lines a DynamoDB load wrote: `body` (the staged lines, each
    newline-terminated) without the items DynamoDB refused (`refused`: their keys)."""
    if not refused:
        return lines_sum(body)
    import json

    gone = {tuple(k[n] for n in key_names if n in k) for k in refused}
    kept = [
        line + b"\n"
        for line in body.splitlines()
        if item_key(json.loads(line)["Item"], key_names) not in gone
    ]
    return lines_sum(b"".join(kept))
