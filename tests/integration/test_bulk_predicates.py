"""Inlined JDBC predicates select exactly the rows the bound keyset predicates select, with
awkward key values, whatever the session's sql_mode."""

from __future__ import annotations

import pytest
from sluice.bulk import inline_predicate, key_kinds
from sluice.db import connect as sluice_connect
from sluice.keys import cut_pages
from sluice.source import decode_key, introspect, range_predicate

pytestmark = pytest.mark.mysql

TABLES = {
    "strs": (
        "CREATE TABLE strs (k VARCHAR(20) CHARACTER SET latin1 NOT NULL, n INT NOT NULL, "
        "PRIMARY KEY (k, n))",
        "INSERT INTO strs VALUES ('a''b', 1), ('a\\\\b', 2), ('a\\\\''b', 3), ('%s', 4), "
        "('é', 5), ('', 6), ('z', -7), ('z', 8), ('\"q\"', 9), ('a b', 10), ('A', 11)",
        ["k", "n"],
    ),
    "bins": (
        "CREATE TABLE bins (k VARBINARY(8) NOT NULL PRIMARY KEY)",
        "INSERT INTO bins VALUES (X'00'), (X'27'), (X'5c'), (X'ff00'), (X'2527'), (X'0000')",
        ["k"],
    ),
    "nums": (
        "CREATE TABLE nums (d DECIMAL(20,3) NOT NULL, t DATETIME(6) NOT NULL, "
        "u BIGINT UNSIGNED NOT NULL, PRIMARY KEY (d, t, u))",
        "INSERT INTO nums VALUES (-1.5, '2024-01-01 00:00:00.000001', 18446744073709551615), "
        "(-1.5, '2024-01-01 00:00:00.000002', 0), (0, '1999-12-31 23:59:59', 5), "
        "(12345678901234567.125, '2038-01-19 03:14:08', 7)",
        ["d", "t", "u"],
    ),
}


@pytest.mark.parametrize("sql_mode", ["", "NO_BACKSLASH_ESCAPES,ANSI_QUOTES", "STRICT_ALL_TABLES"])
@pytest.mark.parametrize("table", list(TABLES))
def test_inlined_predicates_pick_the_same_rows_as_bound_ones(
    connect, new_database, mysql_info, table, sql_mode
):
    db = new_database("pred")
    ddl, rows, key = TABLES[table]
    admin = connect(db)
    with admin.cursor() as cur:
        cur.execute(ddl)
        cur.execute(rows)
    conn = sluice_connect(mysql_info.with_database(db))
    raw = sluice_connect(mysql_info.with_database(db), raw=True)
    src = introspect(conn, db)[table]
    kinds = key_kinds(src, key)
    ranges = cut_pages(raw, db, table, key, 1 if table == "nums" else 2)
    assert len(ranges) >= 3
    cols = ", ".join(f"`{k}`" for k in key)
    with conn.cursor() as cur:
        cur.execute(f"SET SESSION sql_mode = '{sql_mode}'")
        seen = []
        for r in ranges:
            lo, hi = decode_key(r.lo), decode_key(r.hi)
            where, params = range_predicate(key, lo, hi)
            cur.execute(f"SELECT {cols} FROM `{table}` WHERE {where} ORDER BY {cols}", params)
            bound = cur.fetchall()
            cur.execute(
                f"SELECT {cols} FROM `{table}` WHERE {inline_predicate(key, kinds, lo, hi)} "
                f"ORDER BY {cols}"
            )
            assert cur.fetchall() == bound
            seen.extend(bound)
        cur.execute(f"SELECT {cols} FROM `{table}` ORDER BY {cols}")
        assert seen == list(cur.fetchall())
    conn.close()
    raw.close()
