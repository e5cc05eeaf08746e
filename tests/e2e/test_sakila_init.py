"""`sluice init` on Sakila: a starter contract for every base table and every usable view."""

from __future__ import annotations

import re

import pytest
from sluice import cli

from .conftest import init_contract

pytestmark = [pytest.mark.mysql, pytest.mark.slow]

PLAIN = re.compile(r"^[A-Za-z0-9_$]{1,64}$")


def _schema(cur, database: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Base tables with their primary keys, and views with their columns, from the server."""
    cur.execute(
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
        (database,),
    )
    kinds = dict(cur.fetchall())
    cur.execute(
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
        "WHERE TABLE_SCHEMA = %s AND CONSTRAINT_NAME = 'PRIMARY' "
        "ORDER BY TABLE_NAME, ORDINAL_POSITION",
        (database,),
    )
    pks: dict[str, list[str]] = {}
    for table, column in cur.fetchall():
        pks.setdefault(table, []).append(column)
    cur.execute(
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION",
        (database,),
    )
    columns: dict[str, list[str]] = {}
    for table, column in cur.fetchall():
        columns.setdefault(table, []).append(column)
    base = {t: pks[t] for t, kind in kinds.items() if kind == "BASE TABLE"}
    views = {t: columns[t] for t, kind in kinds.items() if kind == "VIEW"}
    return base, views


def _unique_and_not_null(cur, database: str, view: str, key: list[str]) -> bool:
    cols = ", ".join(f"`{c}`" for c in key)
    nulls = " OR ".join(f"`{c}` IS NULL" for c in key)
    cur.execute(
        f"SELECT COUNT(*), COUNT(DISTINCT {cols}), COALESCE(SUM({nulls}), 0) "
        f"FROM `{database}`.`{view}`"
    )
    total, distinct, null_rows = cur.fetchone()
    return total > 0 and total == distinct and null_rows == 0


@pytest.mark.parametrize("target", ["dynamodb", "mysql"])
def test_init_covers_every_base_table_and_each_view_with_a_usable_key(
    target, tmp_path, connect, mysql_url, mysql_env, sakila, sakila_url, capsys
):
    target_url = (
        "dynamodb" if target == "dynamodb" else f"{mysql_url.rstrip('/')}/sluice_test_sakila_new"
    )
    doc = init_contract(sakila_url, target_url, tmp_path / "contract.json")
    cur = connect().cursor()
    base, views = _schema(cur, sakila)
    assert len(base) == 16 and len(views) == 7

    entries = {t["source"]: t for t in doc["tables"]}
    skipped = {s["source"]: s["reason"] for s in doc.get("skipped", [])}
    assert len(entries) == len(doc["tables"]), "a source is listed twice"

    # Every base table, keyed by its primary key.
    for table, pk in base.items():
        assert table in entries, f"base table {table} is missing from the contract"
        assert entries[table]["kind"] == "table"
        assert entries[table]["key"] == pk, table

    # Every view is either moved, on a key the data shows unique and not null, or left out
    # with a reason; a view left out for a column name says which.
    assert set(entries) | set(skipped) == set(base) | set(views)
    assert not set(entries) & set(skipped)
    for view, columns in views.items():
        odd = [c for c in columns if not PLAIN.match(c)]
        if view in skipped:
            assert skipped[view].strip(), f"view {view} is left out without a reason"
            if odd:
                assert all(c in skipped[view] for c in odd), skipped[view]
            continue
        assert not odd, f"view {view} has columns {odd} that no SQL of sluice can name"
        assert entries[view]["kind"] == "view"
        assert _unique_and_not_null(cur, sakila, view, entries[view]["key"]), view
    # Sakila's views with plain column names all have such a key (actor_info.actor_id,
    # film_list.FID, ...); customer_list and staff_list have a column `zip code`.
    assert set(views) - set(entries) == {"customer_list", "staff_list"}

    if target == "dynamodb":
        (table,) = doc["target"]["tables"]
        # A new table: init proposes Import from S3, and says it did not check the account.
        assert doc["target"]["tables"][table] == {
            "partition_key": "PK",
            "sort_key": "SK",
            "load": "import",
        }
        (note,) = doc["notes"]
        assert '"load": "import" proposed' in note and "did not check your AWS account" in note
        prefixes = set()
        for name, entry in entries.items():
            assert entry["target"]["table"] == table
            pk = entry["target"]["partition_key"]
            assert pk.startswith(name.upper() + "#{"), pk
            prefixes.add(pk.split("#", 1)[0])
        assert len(prefixes) == len(entries), "two entities share a key prefix"
    else:
        assert doc["target"]["kind"] == "mysql"
        assert doc["target"]["database"] == "sluice_test_sakila_new"
        assert all(e["target"]["table"] == name for name, e in entries.items())

    capsys.readouterr()
    assert cli.main(["validate", "--live", str(tmp_path / "contract.json")]) == 0
    assert capsys.readouterr().out.strip().endswith(": valid")
