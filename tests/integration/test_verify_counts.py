"""The run's verification by counts, against MariaDB: every source table's COUNT(*) against
its pages' extracted rows, every MySQL target table's against its loaded rows."""

from __future__ import annotations

import pymysql
import pytest
from sluice.contract import parse
from sluice.db import connect as sluice_connect
from sluice.manifest import TableProgress
from sluice.verify import verify

pytestmark = pytest.mark.mysql


def _table(conn, database: str, name: str, rows: int) -> None:
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{database}`.`{name}` (id INT PRIMARY KEY)")
        if rows:
            values = ", ".join(f"({i})" for i in range(1, rows + 1))
            cur.execute(f"INSERT INTO `{database}`.`{name}` VALUES {values}")  # noqa: S608


def _progress(table: str, rows: int, loaded: int) -> TableProgress:
    return TableProgress(table, pages=1, status_counts={"loaded": 1}, extracted=rows, loaded=loaded)


@pytest.fixture
def databases(connect, new_database):
    src, dst = new_database("vc_src"), new_database("vc_dst")
    conn = connect()
    for name, source_rows, target_rows in (("a", 3, 3), ("b", 5, 4), ("c", 2, 2)):
        _table(conn, src, name, source_rows)
        _table(conn, dst, name, target_rows)
    return src, dst


def _verify(mysql_info, src: str, dst: str, progress: dict) -> dict:
    contract = parse(
        {
            "version": 1,
            "source": {"database": src},
            "target": {"kind": "mysql", "database": dst},
            "tables": [
                {"source": t, "key": ["id"], "target": {"table": t}} for t in ("a", "b", "c")
            ],
        }
    )
    source, target = sluice_connect(mysql_info), sluice_connect(mysql_info)
    try:
        return verify(contract, progress, source_conn=source, target_conn=target)
    finally:
        source.close()
        target.close()


def test_each_table_s_source_and_target_counts_are_its_own(mysql_info, databases):
    """Each table's entry holds its own source and target counts (the target's are counted in
    a thread of their own), and a target one row short fails its table alone."""
    src, dst = databases
    progress = {"a": _progress("a", 3, 3), "b": _progress("b", 5, 5), "c": _progress("c", 2, 2)}

    report = _verify(mysql_info, src, dst, progress)

    counts = {n: (t["source_rows"], t["target_rows"]) for n, t in report["tables"].items()}
    assert counts == {"a": (3, 3), "b": (5, 4), "c": (2, 2)}
    assert not report["ok"]
    assert [n for n, t in report["tables"].items() if not t["ok"]] == ["b"]
    assert report["tables"]["b"]["problems"] == ["target b has 4 rows, loaded 5"]
    assert report["verdict"] == "NOT VERIFIED: b: target b has 4 rows, loaded 5"


def test_a_source_that_grew_after_extract_is_named(mysql_info, databases):
    src, dst = databases
    progress = {"a": _progress("a", 3, 3), "b": _progress("b", 4, 4), "c": _progress("c", 2, 2)}

    report = _verify(mysql_info, src, dst, progress)

    assert report["tables"]["b"]["problems"] == ["source has 5 rows, pages extracted 4"]
    assert report["tables"]["a"]["ok"] and report["tables"]["c"]["ok"]


def test_every_count_matching_verifies_the_run(mysql_info, databases, connect):
    src, dst = databases
    with connect().cursor() as cur:
        cur.execute(f"INSERT INTO `{dst}`.`b` VALUES (5)")  # noqa: S608
    progress = {"a": _progress("a", 3, 3), "b": _progress("b", 5, 5), "c": _progress("c", 2, 2)}

    report = _verify(mysql_info, src, dst, progress)

    assert report["ok"]
    assert report["verdict"] == "VERIFIED: all 10 source rows accounted for (10 loaded, 0 rejected)"


def test_a_count_that_fails_fails_verification_with_the_server_s_error(
    mysql_info, databases, connect
):
    src, dst = databases
    with connect().cursor() as cur:
        cur.execute(f"DROP TABLE `{dst}`.`c`")
    progress = {"a": _progress("a", 3, 3), "b": _progress("b", 5, 5), "c": _progress("c", 2, 2)}

    with pytest.raises(pymysql.err.ProgrammingError, match=f"{dst}.c' doesn't exist"):
        _verify(mysql_info, src, dst, progress)
