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


@dataclass(frozen=True, slots=True)
class Column:
    """One source column: its MySQL definition and its staged Arrow type."""

    name: str
    data_type: str  # information_schema DATA_TYPE, lower case
    column_type: str  # full DDL type, e.g. "decimal(10,2) unsigned", "set('a','b')"
    nullable: bool
    arrow: pa.DataType
    kind: str  # int | decimal | float | bit | date | datetime | timestamp | time | year | text | set | enum | json | binary | spatial

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
        return cls(name, dt, column_type, bool(nullable), arrow, kind)

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
