"""MySQL/Aurora target: table creation or compatibility check, and LOAD DATA upserts."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pymysql

from ..checksum import var_data
from ..errors import SchemaMismatch, SluiceError
from ..source import SourceTable
from ..sql import check_ident, q, qualified
from ..staging import NO_REJECTS, Rejected, lines_buffer
from ..types import kind_of

# Server errors about a value (not the connection or the server): the rows carrying it are
# refused, the others can still load. Out of range, too long, truncated, incorrect value,
# NULL in NOT NULL, CHECK constraints, bad geometry.
_VALUE_ERRNOS = {1048, 1264, 1265, 1292, 1366, 1367, 1406, 1411, 1416, 1690, 3819, 4025, 4078}


def _is_value_error(exc: Exception) -> bool:
    if isinstance(exc, pymysql.err.DataError | pymysql.err.IntegrityError):
        return True
    return bool(exc.args) and exc.args[0] in _VALUE_ERRNOS


def _rollback(conn) -> None:
    """Roll back; a connection that died mid-load has nothing left to roll back (the server
    discards an unfinished transaction), so its error is not the one worth reporting."""
    with contextlib.suppress(pymysql.err.Error):
        conn.rollback()


class RowsRefused(SluiceError):
    """The server refused a value of these rows (not a connection or server failure)."""


# LOAD DATA escapes (FIELDS ESCAPED BY '\\'): backslash first, then the separators.
_ESCAPES = ((b"\\", b"\\\\"), (b"\t", b"\\t"), (b"\n", b"\\n"), (b"\r", b"\\r"), (b"\x00", b"\\0"))
_SESSION = (
    "SET SESSION foreign_key_checks = 0, "
    "sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION,STRICT_ALL_TABLES', "
    "time_zone = '+00:00', lock_wait_timeout = %s"
)
# How long a load waits for its table's metadata lock (held by DDL, LOCK TABLES, a backup's
# lock, or by a transaction that DDL queues behind): as long as InnoDB waits for a row lock by
# default. The server's own default is a day, far past the load function's timeout: the load
# would hang instead of failing with a lock wait timeout, which is retried like a row lock's.
METADATA_LOCK_WAIT_SECONDS = 50


# ---------------------------------------------------------------- target tables


def target_columns(conn, database: str, table: str) -> dict[str, str] | None:
    """{column: COLUMN_TYPE} of an existing target table, or None when it does not exist."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        rows = cur.fetchall()
    return {n: t for n, t in rows} or None


def _has_unique_key(conn, database: str, table: str) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
            "AND TABLE_NAME = %s AND NON_UNIQUE = 0 LIMIT 1",
            (database, table),
        )
        return cur.fetchone() is not None


def create_ddl(
    conn,
    source_db: str,
    src: SourceTable,
    target_table: str,
    columns: Sequence[str],
    rename: dict[str, str],
    key: Sequence[str],
) -> str:
    """DDL for a target table made from the source's definition.

    A base table moved whole keeps its own `SHOW CREATE TABLE` (indexes, defaults, charset);
    a view, or a table with columns left out or renamed, gets its columns' types and the key.
    """
    check_ident(target_table, "target table")
    whole = src.kind == "table" and list(columns) == list(src.column_names) and not rename
    if whole:
        with conn.cursor() as cur:
            cur.execute(f"SHOW CREATE TABLE {qualified(source_db, src.name)}")
            ddl = cur.fetchone()[1]
        return re.sub(r"^CREATE TABLE `[^`]+`", f"CREATE TABLE {q(target_table)}", ddl, count=1)
    lines = []
    for c in columns:
        col = src.column(c)
        lines.append(
            f"  {q(rename.get(c, c))} {col.column_type} {'NULL' if col.nullable else 'NOT NULL'}"
        )
    lines.append("  PRIMARY KEY (" + ", ".join(q(rename.get(k, k)) for k in key) + ")")
    return f"CREATE TABLE {q(target_table)} (\n" + ",\n".join(lines) + "\n) DEFAULT CHARSET=utf8mb4"


def ensure_table(
    conn,
    target_db: str,
    source_db: str,
    src: SourceTable,
    target_table: str,
    columns: Sequence[str],
    rename: dict[str, str],
    key: Sequence[str],
    *,
    source_conn=None,
) -> str:
    """Create the target table, or check that the existing one can take the rows.

    `source_conn` reads the source's definition; it defaults to `conn`, which serves only
    when source and target are databases of one server.
    Returns "created" or "exists"; raises SchemaMismatch naming table and column.
    """
    existing = target_columns(conn, target_db, target_table)
    if existing is None:
        ddl = create_ddl(source_conn or conn, source_db, src, target_table, columns, rename, key)
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {q(target_db)} CHARACTER SET utf8mb4")
            cur.execute("SET SESSION foreign_key_checks = 0")
            cur.execute(f"USE {q(target_db)}")
            cur.execute(ddl)
        return "created"
    problems = []
    for c in columns:
        name = rename.get(c, c)
        want = src.column(c).column_type
        if name not in existing:
            problems.append(f"column {name!r} is missing (source {src.name}.{c} {want})")
        elif not _compatible(want, existing[name]):
            problems.append(f"column {name!r} is {existing[name]}, source {src.name}.{c} is {want}")
    if not _has_unique_key(conn, target_db, target_table):
        problems.append("it has no primary or unique key, so a re-loaded page would duplicate rows")
    if problems:
        raise SchemaMismatch(
            f"target table {target_db}.{target_table} exists but cannot take {src.name}: "
            + "; ".join(problems)
            + ". Alter the target table, or drop it and let Sluice create it."
        )
    return "exists"


_INT_RANK = {"tinyint": 1, "smallint": 2, "mediumint": 3, "int": 4, "bigint": 5}


def _compatible(source_type: str, target_type: str) -> bool:
    s, t = source_type.lower(), target_type.lower()
    if s == t:
        return True
    sb, tb = s.split("(")[0].split()[0], t.split("(")[0].split()[0]
    if sb in _INT_RANK and tb in _INT_RANK:
        same_sign = ("unsigned" in s) == ("unsigned" in t)
        return same_sign and _INT_RANK[tb] >= _INT_RANK[sb]
    if sb == tb == "varchar" or sb == tb == "char" or (sb == "char" and tb == "varchar"):
        return _length(t) >= _length(s)
    text_rank = {"tinytext": 1, "text": 2, "mediumtext": 3, "longtext": 4}
    if sb in text_rank and tb in text_rank:
        return text_rank[tb] >= text_rank[sb]
    return False


def _length(t: str) -> int:
    m = re.search(r"\((\d+)\)", t)
    return int(m.group(1)) if m else 0


# ---------------------------------------------------------------- LOAD DATA


def _field_text(arr: pa.Array, kind: str) -> pa.Array:
    """One column as LOAD DATA text (binary), escaped; NULL stays null (written as \\N)."""
    if kind == "year":  # the text '0' reads as 2000; '0000' is the zero year
        return pc.cast(pc.utf8_lpad(pc.cast(arr, pa.string()), 4, "0"), pa.binary())
    if pa.types.is_boolean(arr.type):
        return pc.cast(pc.cast(pc.cast(arr, pa.int8()), pa.string()), pa.binary())
    if pa.types.is_timestamp(arr.type):
        out = pc.strftime(arr, "%Y-%m-%d %H:%M:%S")
    elif pa.types.is_binary(arr.type) or pa.types.is_string(arr.type):
        out = arr
    else:
        return pc.cast(pc.cast(arr, pa.string()), pa.binary())
    return _escaped(pc.cast(out, pa.binary()))


def _escaped(out: pa.Array) -> pa.Array:
    """`out` (binary) with LOAD DATA's escapes, a pass for each byte the values hold: a pass
    copies every value, and most columns hold none of the five (1M bench rows: 0.56 -> 0.21
    CPU s to encode). Escaping the backslash first adds no byte the later passes look for."""
    held = var_data(out).to_pybytes()
    for a, b in _ESCAPES:
        if a in held:
            out = pc.replace_substring(out, a, b)
    return out


def encode_load_data(rows: pa.Table) -> bytes:
    """The page as a LOAD DATA file: tab-separated, newline-terminated, \\N for NULL."""
    if rows.num_rows == 0:
        return b""
    fields = [
        _field_text(rows.column(i).combine_chunks(), kind_of(rows.schema.field(i)))
        for i in range(rows.num_columns)
    ]
    line = pc.binary_join_element_wise(
        *fields, b"\t", null_handling="replace", null_replacement=b"\\N"
    )
    return lines_buffer(pc.binary_join_element_wise(line, pa.scalar(b""), b"\n"))


ENCODE_ROWS = 25_000  # rows encoded at a time into the LOAD DATA file


def load_rows(conn, database: str, table: str, rows: pa.Table, on_conflict: str = "replace") -> int:
    """Upsert `rows` into `database.table` with LOAD DATA LOCAL INFILE; returns rows written.
    See load_slices."""
    parts = (rows.slice(i, ENCODE_ROWS) for i in range(0, rows.num_rows, ENCODE_ROWS))
    return load_slices(conn, database, table, rows.schema, parts, on_conflict)


def load_slices(
    conn,
    database: str,
    table: str,
    schema: pa.Schema,
    slices: Iterable[pa.Table],
    on_conflict: str = "replace",
) -> int:
    """Upsert the rows of `slices` (tables of `schema`) into `database.table` in ONE LOAD
    DATA LOCAL INFILE statement and transaction; returns rows written.

    The file is encoded a slice at a time, so only one slice is held as text. REPLACE makes a
    re-loaded page leave the table as if loaded once. The file is utf8mb4 (Arrow's text),
    which the server converts to each column's character set. A bad value fails the
    statement or, with LOCAL, may only raise a warning: either way the whole transaction is
    rolled back and RowsRefused raised.
    """
    targets, sets = [], []
    for i, name in enumerate(schema.names):
        if kind_of(schema.field(i)) == "bit":
            targets.append(f"@v{i}")
            sets.append(f"{q(name)} = CAST(@v{i} AS UNSIGNED)")
        else:
            targets.append(q(name))
    verb = {"replace": "REPLACE", "ignore": "IGNORE"}[on_conflict]
    sql = (
        f"LOAD DATA LOCAL INFILE %s {verb} INTO TABLE {qualified(database, table)} "
        "CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
        "LINES TERMINATED BY '\\n' ("
        + ", ".join(targets)
        + ")"
        + (" SET " + ", ".join(sets) if sets else "")
    )
    fd, path = tempfile.mkstemp(prefix="sluice-", suffix=".tsv")
    try:
        rows = 0
        with os.fdopen(fd, "wb") as f:
            for part in slices:
                f.write(encode_load_data(part))
                rows += part.num_rows
        if rows == 0:
            return 0
        with conn.cursor() as cur:
            cur.execute(_SESSION, (METADATA_LOCK_WAIT_SECONDS,))
            conn.begin()
            try:
                cur.execute(sql, (path,))
                cur.execute("SHOW WARNINGS LIMIT 5")
                warnings = cur.fetchall()
            except pymysql.err.MySQLError as exc:
                _rollback(conn)
                if not _is_value_error(exc):
                    raise
                # A value the target column cannot hold (strict mode makes it an error).
                raise RowsRefused(
                    f"loading {database}.{table}: the server refused a value ({exc.args[-1]}); "
                    "nothing of these rows was written. Alter the target column, or drop the "
                    "table and let Sluice create it"
                ) from exc
            except BaseException:
                _rollback(conn)
                raise
            if warnings:
                conn.rollback()
            else:
                conn.commit()
    finally:
        os.unlink(path)
    if warnings:
        detail = "; ".join(f"{w[0]} {w[1]}: {w[2]}" for w in warnings)
        raise RowsRefused(
            f"loading {database}.{table}: the server warned ({detail}); no value may be changed silently"
        )
    return rows


def load_page_rows(
    conn,
    database: str,
    table: str,
    rows: pa.Table,
    key: Sequence[str],
    on_conflict: str = "replace",
) -> tuple[int, Rejected]:
    """Load a page; rows the server refuses are isolated (by halving) and returned as rejected,
    each with its key and the server's reason, so one bad value never holds up its page."""
    try:
        return load_rows(conn, database, table, rows, on_conflict), NO_REJECTS
    except RowsRefused as exc:
        if rows.num_rows == 1:
            return 0, Rejected(rows.select(list(key)).to_pylist(), [str(exc)])
    half = rows.num_rows // 2
    a_written, a_rejected = load_page_rows(
        conn, database, table, rows.slice(0, half), key, on_conflict
    )
    b_written, b_rejected = load_page_rows(
        conn, database, table, rows.slice(half), key, on_conflict
    )
    return a_written + b_written, a_rejected + b_rejected


def load_page_slices(
    conn,
    database: str,
    table: str,
    schema: pa.Schema,
    slices: Callable[[], Iterable[pa.Table]],
    key: Sequence[str],
    on_conflict: str = "replace",
) -> tuple[int, Rejected]:
    """load_page_rows of a page given as slices (tables of `schema`, in order, which
    `slices()` yields anew each time it is called), holding a slice or two at a time: the
    whole page in one statement and transaction; if the server refuses a row, each slice
    again on its own (load_page_rows), which isolates the refused rows."""
    parts = iter(slices())
    first, second = next(parts, None), next(parts, None)
    if second is None:  # a page of one slice is a table like any other
        rows = schema.empty_table() if first is None else first
        return load_page_rows(conn, database, table, rows, key, on_conflict)
    try:
        page = itertools.chain([first, second], parts)
        return load_slices(conn, database, table, schema, page, on_conflict), NO_REJECTS
    except RowsRefused:
        pass
    written, rejected = 0, NO_REJECTS
    for part in slices():
        w, r = load_page_rows(conn, database, table, part, key, on_conflict)
        written, rejected = written + w, rejected + r
    return written, rejected
