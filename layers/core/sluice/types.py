"""MySQL column types and how each is read, staged in Arrow, and written back exactly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from .errors import SluiceError
from .sql import q

_INTS = {
    "tinyint": (pa.int8(), pa.uint8()),
    "smallint": (pa.int16(), pa.uint16()),
    "mediumint": (pa.int32(), pa.uint32()),
    "int": (pa.int32(), pa.uint32()),
    "integer": (pa.int32(), pa.uint32()),
    "bigint": (pa.int64(), pa.uint64()),
}
_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}
_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_SPATIAL = {
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
}

_CHARACTER_KINDS = {"text", "json", "enum", "set"}
_SIZED = {"char", "varchar", "binary", "varbinary"}
# Bytes a stored value can hold, by type; after conversion to utf8mb4 a character column's
# value takes at most 4 bytes for each stored byte (any charset converts to at most 4).
_STORED_MAX = {
    "tinytext": 255,
    "tinyblob": 255,
    "text": 65_535,
    "blob": 65_535,
    "mediumtext": 16_777_215,
    "mediumblob": 16_777_215,
}
_MAX_UTF8MB4 = 4
# Character sets whose every value is UTF-8 as it is stored (utf8mb3 is UTF-8 without 4-byte
# sequences; MySQL 8 names it utf8mb3, older servers utf8).
_UTF8_CHARSETS = {"utf8mb4", "utf8mb3", "utf8"}
# No string a server builds is longer than max_allowed_packet, at most 1 GiB.
_LINE_MAX = 1 << 30
# The longest a number, date or time prints: DECIMAL(65,30) with sign and point is 67.
_PRINTED_MAX = 98


def _declared_length(column_type: str) -> int | None:
    """n of `varchar(n)`, `binary(n)` ...; None when the type declares none."""
    start = column_type.find("(")
    end = column_type.find(")", start + 1)
    if start < 0 or end < 0:
        return None
    inner = column_type[start + 1 : end]
    return int(inner) if inner.isdigit() else None


@dataclass(frozen=True, slots=True)
class Column:
    """One source column: its MySQL definition and its staged Arrow type."""

    name: str
    data_type: str  # information_schema DATA_TYPE, lower case
    column_type: str  # full DDL type, e.g. "decimal(10,2) unsigned", "set('a','b')"
    nullable: bool
    arrow: pa.DataType
    kind: str  # int | decimal | float | bit | date | datetime | timestamp | time | year | text | set | enum | json | binary | spatial
    charset: str | None = None  # information_schema CHARACTER_SET_NAME of a character column

    @classmethod
    def from_information_schema(
        cls,
        *,
        name,
        data_type,
        column_type,
        nullable,
        precision,
        scale,
        datetime_precision,
        charset,
        is_json,
    ) -> Column:
        dt = data_type.lower()
        unsigned = "unsigned" in column_type.lower()
        if dt in _INTS:
            arrow, kind = _INTS[dt][unsigned], "int"
        elif dt == "decimal":
            p, s = int(precision), int(scale or 0)
            arrow, kind = (pa.decimal128(p, s) if p <= 38 else pa.decimal256(p, s)), "decimal"
        elif dt == "float":
            arrow, kind = pa.float32(), "float"  # read through DOUBLE: see select_expr
        elif dt in ("double", "real"):
            arrow, kind = pa.float64(), "float"
        elif dt == "bit":
            arrow, kind = pa.uint64(), "bit"
        # Dates and times are staged as the server's own text (a UTC session for TIMESTAMP):
        # exact at every precision, and zero dates such as 0000-00-00, which SQL modes allow
        # and no Arrow date or timestamp type can hold, survive too.
        elif dt == "date":
            arrow, kind = pa.string(), "date"
        elif dt == "datetime":
            arrow, kind = pa.string(), "datetime"
        elif dt == "timestamp":
            arrow, kind = pa.string(), "timestamp"
        elif dt == "time":
            arrow, kind = (
                pa.string(),
                "time",
            )  # -838:59:59 .. 838:59:59: no Arrow time type holds it
        elif dt == "year":
            arrow, kind = pa.uint16(), "year"
        elif is_json or dt == "json":
            arrow, kind = pa.string(), "json"
        elif dt in _TEXT:
            arrow, kind = pa.string(), {"set": "set", "enum": "enum"}.get(dt, "text")
            if charset == "binary":
                arrow, kind = pa.binary(), "binary"
        elif dt in _BINARY:
            arrow, kind = pa.binary(), "binary"
        elif dt in _SPATIAL:
            arrow, kind = pa.binary(), "spatial"
        else:
            raise SluiceError(
                f"column {name!r} has type {column_type!r}, which Sluice cannot stage yet; "
                "exclude the column or cast it in a view"
            )
        return cls(name, dt, column_type, bool(nullable), arrow, kind, charset)

    def wire_type(self) -> pa.DataType:
        """What the driver hands over undecoded: bytes for binary data, text for the rest."""
        return pa.binary() if self.kind in ("binary", "spatial") else pa.string()

    def select_expr(self) -> str:
        if self.kind == "bit":
            return f"CAST({q(self.name)} AS UNSIGNED)"
        if self.data_type == "float":
            # The text protocol prints FLOAT with 6 significant digits; as DOUBLE the stored
            # single-precision value arrives whole, and narrows back to float32 exactly.
            return f"CAST({q(self.name)} AS DOUBLE)"
        return q(self.name)

    def line_expr(self) -> str:
        """The bytes the text protocol would send for this column, as a binary string the
        server can join into one line per row (see sluice.rowlines).

        Character columns are converted to utf8mb4 first, as the session's
        character_set_results converts them on the wire; numbers, dates and times print as
        ASCII in a binary string as they do on the wire; binary and spatial values are their
        bytes.

        A utf8mb4 or utf8mb3 column's bytes already are the wire's, so it is only cast:
        reading a million bench rows (four such columns of eight) as lines took the server
        2.15-2.17 CPU seconds against 2.55-2.58 with CONVERT (alternating, at a slow hour).
        The cast is not optional: joined as text beside utf8mb4 columns of other collations,
        the server makes the whole line text and turns a binary value's bytes that are not
        UTF-8 into '?' (tests/integration/test_rowlines.py). A stored value that is not valid
        UTF-8 (legacy data in a utf8mb3 column, say), which CONVERT would have made '?', now
        fails its page naming the column (rowlines.split checks the text) instead."""
        expr = self.select_expr()
        if self.kind not in _CHARACTER_KINDS:
            return expr
        if self.charset in _UTF8_CHARSETS:
            return f"CAST({expr} AS BINARY)"
        return f"CAST(CONVERT({expr} USING utf8mb4) AS BINARY)"

    def max_line_bytes(self) -> int:
        """An upper bound of the bytes one value takes in line_expr()."""
        if self.kind not in _CHARACTER_KINDS and self.kind not in ("binary", "spatial"):
            return _PRINTED_MAX  # numbers, dates and times print in a few dozen characters
        per_char = 1 if self.kind in ("binary", "spatial") else _MAX_UTF8MB4
        n = _declared_length(self.column_type)
        if n is not None and self.data_type in _SIZED:
            bound = per_char * n
        elif self.kind in ("enum", "set"):  # a value is at most every member, commas between
            bound = _MAX_UTF8MB4 * len(self.column_type)
        else:
            bound = per_char * _STORED_MAX.get(self.data_type, _LINE_MAX)
        return min(bound, _LINE_MAX)

    def field(self) -> pa.Field:
        meta = {b"mysql_type": self.column_type.encode(), b"kind": self.kind.encode()}
        return pa.field(self.name, self.arrow, nullable=self.nullable, metadata=meta)


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    return pa.schema([c.field() for c in columns])


def kind_of(field: pa.Field) -> str:
    """The source kind recorded in a staged field's metadata."""
    return (field.metadata or {}).get(b"kind", b"").decode() or "text"


def mysql_type_of(field: pa.Field) -> str:
    return (field.metadata or {}).get(b"mysql_type", b"").decode()
