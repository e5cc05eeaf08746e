"""The MySQL source: schema introspection, keyset range SQL and page reads into Arrow."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from . import rowlines
from .errors import SluiceError
from .fetch import fetch_lines
from .sql import q, qualified
from .types import Column, arrow_schema

KeyValue = str | int | dict  # JSON-safe; bytes travel as {"b64": ...}


@dataclass(frozen=True, slots=True)
class SourceTable:
    name: str
    kind: str  # "table" | "view"
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    estimated_rows: int

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def introspect(conn, database: str, only: Sequence[str] | None = None) -> dict[str, SourceTable]:
    """Tables and views of `database` with typed columns and primary keys."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, TABLE_TYPE, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
            (database,),
        )
        tables = [(n, "view" if t == "VIEW" else "table", int(r)) for n, t, r in cur.fetchall()]
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, "
            "NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
            "ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (database,),
        )
        cols = cur.fetchall()
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
            "WHERE TABLE_SCHEMA = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (database,),
        )
        pks: dict[str, list[str]] = {}
        for t, c in cur.fetchall():
            pks.setdefault(t, []).append(c)
        json_cols = _json_columns(cur, database)
    by_table: dict[str, list[Column]] = {}
    for t, name, dtype, ctype, nullable, prec, scale, dtprec, charset in cols:
        by_table.setdefault(t, []).append(
            Column.from_information_schema(
                name=name,
                data_type=dtype,
                column_type=ctype,
                nullable=nullable == "YES",
                precision=prec,
                scale=scale,
                datetime_precision=dtprec,
                charset=charset,
                is_json=(t, name) in json_cols,
            )
        )
    wanted = set(only) if only is not None else None
    return {
        name: SourceTable(name, kind, tuple(by_table.get(name, ())), tuple(pks.get(name, ())), rows)
        for name, kind, rows in tables
        if wanted is None or name in wanted
    }


def _json_columns(cur, database: str) -> set[tuple[str, str]]:
    """JSON columns: MySQL reports DATA_TYPE json; MariaDB stores JSON as LONGTEXT with a
    json_valid() check constraint, which is how we recognise it there."""
    found = set()
    cur.execute(
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND DATA_TYPE = 'json'",
        (database,),
    )
    found.update(cur.fetchall())
    try:
        cur.execute(
            "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = %s AND CHECK_CLAUSE LIKE 'json_valid(%%'",
            (database,),
        )
        for table, clause in cur.fetchall():
            col = clause[len("json_valid(") :].strip(")` ")
            found.add((table, col))
    except Exception as exc:  # MySQL 5.7 has no CHECK_CONSTRAINTS view: JSON is typed there
        if "CHECK_CONSTRAINTS" not in str(exc):
            raise
    return found


# ---------------------------------------------------------------- keyset range SQL


def encode_key(values: Sequence) -> list[KeyValue]:
    """Key values as JSON-safe values (bytes become {"b64": ...})."""
    return [{"b64": base64.b64encode(v).decode()} if isinstance(v, bytes) else v for v in values]


def decode_key(values: Sequence[KeyValue] | None) -> list | None:
    if values is None:
        return None
    return [base64.b64decode(v["b64"]) if isinstance(v, dict) else v for v in values]


def _after(key: Sequence[str], values: Sequence) -> tuple[str, list]:
    """SQL for "row key > values" in key order, expanded so any index can serve it."""
    ors, params = [], []
    for i, col in enumerate(key):
        ands = [f"{q(k)} = %s" for k in key[:i]] + [f"{q(col)} > %s"]
        ors.append("(" + " AND ".join(ands) + ")")
        params.extend(values[: i + 1])
    return "(" + " OR ".join(ors) + ")", params


def range_predicate(
    key: Sequence[str], lo: Sequence | None, hi: Sequence | None
) -> tuple[str, list]:
    """WHERE text for lo < key <= hi (either side open when None)."""
    parts, params = [], []
    if lo is not None:
        sql, p = _after(key, lo)
        parts.append(sql)
        params.extend(p)
    if hi is not None:
        sql, p = _after(key, hi)
        parts.append(f"NOT {sql}")
        params.extend(p)
    return (" AND ".join(parts) or "TRUE"), params


# ---------------------------------------------------------------- page reads


def page_query(database: str, table: SourceTable, key: Sequence[str], lo, hi) -> tuple[str, list]:
    where, params = range_predicate(key, lo, hi)
    select = ", ".join(c.select_expr() for c in table.columns)
    order = ", ".join(q(k) for k in key)
    sql = f"SELECT {select} FROM {qualified(database, table.name)} WHERE {where} ORDER BY {order}"  # noqa: S608 - identifiers checked and quoted, values bound
    return sql, params


def line_query(database: str, table: SourceTable, key: Sequence[str], lo, hi) -> tuple[str, list]:
    """page_query's rows as one binary line each (sluice.rowlines)."""
    where, params = range_predicate(key, lo, hi)
    line = rowlines.select_line(rowlines.layout(table.columns))
    order = ", ".join(q(k) for k in key)
    sql = f"SELECT {line} FROM {qualified(database, table.name)} WHERE {where} ORDER BY {order}"  # noqa: S608 - identifiers checked and quoted, values bound
    return sql, params


def read_page(
    raw_conn,
    database: str,
    table: SourceTable,
    key: Sequence[str],
    lo,
    hi,
    *,
    chunk_rows: int = 20_000,
) -> Iterator[pa.RecordBatch]:
    """Stream the rows lo < key <= hi as Arrow record batches of at most `chunk_rows`.

    The server joins each row into one line (sluice.rowlines), which is read straight off the
    connection's buffer (sluice.fetch) rather than through pymysql's per-row Python; Arrow
    cuts the lines into the columns the text protocol would have sent and types each column
    in one vectorised cast, exactly, with no per-value Python conversion. From a row too long for one line (past the server's max_allowed_packet), or a
    chunk whose lines do not match their headers, the rest of the page is read column by
    column (page_query), which gives the same values.
    `raw_conn` should return values undecoded (db.connect(raw=True)).
    """
    lay = rowlines.layout(table.columns)
    sql, params = line_query(database, table, key, lo, hi)
    schema = arrow_schema(table.columns)
    resume_after, by_columns = lo, False
    cur = raw_conn.cursor(_unbuffered(raw_conn))
    try:
        cur.execute(sql, params)
        while values := fetch_lines(cur, chunk_rows):
            lines = pa.array(values, type=pa.large_binary())
            if lines.null_count:  # too long for one line: this row on, column by column
                by_columns = True
                lines = lines.slice(0, pc.index(pc.is_null(lines), True).as_py())
            try:
                wire = _split(lines, lay, table.name)
            except rowlines.LineError:  # a line not to be trusted: this chunk on, likewise
                by_columns = True
                break
            if len(lines):
                yield _staged(wire, table.columns, schema, table.name)
                resume_after = [wire[table.column_names.index(k)][-1].as_py() for k in key]
            if by_columns:
                break
    finally:
        cur.close()  # an unbuffered result is read to its end first
    if by_columns:
        yield from _read_by_columns(
            raw_conn, database, table, key, resume_after, hi, chunk_rows=chunk_rows
        )


def _split(lines: pa.Array, lay: rowlines.LineLayout, table: str) -> list[pa.Array]:
    try:
        return rowlines.split(lines, lay)
    except rowlines.LineError:
        raise
    except SluiceError as exc:
        raise SluiceError(f"{table}.{exc}") from exc


def _read_by_columns(
    raw_conn, database: str, table: SourceTable, key: Sequence[str], lo, hi, *, chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    """read_page with pymysql decoding every column (page_query)."""
    sql, params = page_query(database, table, key, lo, hi)
    schema = arrow_schema(table.columns)
    cur = raw_conn.cursor(_unbuffered(raw_conn))
    try:
        cur.execute(sql, params)
        while True:
            rows = cur.fetchmany(chunk_rows)
            if not rows:
                break
            yield rows_to_batch(rows, table.columns, schema, table.name)
    finally:
        cur.close()


def _unbuffered(conn):
    import pymysql.cursors

    return pymysql.cursors.SSCursor


def rows_to_batch(
    rows: list[tuple], columns: Sequence[Column], schema: pa.Schema, table: str
) -> pa.RecordBatch:
    """Rows as the driver returns them from page_query (undecoded) -> one typed batch."""
    wire = [
        pa.array(values, type=col.wire_type())
        for col, values in zip(columns, zip(*rows, strict=True), strict=True)
    ]
    return _staged(wire, columns, schema, table)


def _staged(
    wire: Sequence[pa.Array], columns: Sequence[Column], schema: pa.Schema, table: str
) -> pa.RecordBatch:
    """Columns as the driver hands them over (Column.wire_type) -> their staged types."""
    arrays = []
    for i, (col, raw) in enumerate(zip(columns, wire, strict=True)):
        staged = schema.field(i).type
        try:
            arrays.append(raw if raw.type == staged else pc.cast(raw, staged))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SluiceError(
                f"{table}.{col.name} ({col.column_type}): a value cannot be staged exactly as "
                f"{staged}: {exc}"
            ) from exc
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
