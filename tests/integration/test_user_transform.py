"""A contract's own `module:function` transform: applied to every page, its result checked,
its failures rejecting only its page's rows."""

from __future__ import annotations

import io
import json
import textwrap

import pytest

MODULE = '''
import pyarrow as pa
import pyarrow.compute as pc


def shape(page: pa.Table) -> pa.Table:
    """Add initials, upper-case the email, drop users whose id ends in 0, fail on page 2."""
    ids = page.column("id")
    if pc.any(pc.equal(ids, 7)).as_py():
        raise RuntimeError("cannot shape the page that holds user 7")
    keep = pc.not_equal(pc.cast(ids, pa.int64()) % 10 if hasattr(pc, "mod") else pc.subtract(
        pc.cast(ids, pa.int64()), pc.multiply(pc.divide(pc.cast(ids, pa.int64()), 10), 10)), 0)
    page = page.filter(keep)
    initials = pc.utf8_upper(pc.utf8_slice_codeunits(page.column("name"), 0, 2))
    page = page.set_column(page.schema.get_field_index("email"), "email", pc.utf8_upper(page.column("email")))
    return page.append_column("initials", initials)
'''


@pytest.fixture
def people(connect, new_database) -> str:
    name = new_database("ut_src")
    with connect(name).cursor() as cur:
        cur.execute(
            "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, email VARCHAR(80))"
        )
        cur.executemany(
            "INSERT INTO people VALUES (%s, %s, %s)",
            [(i, f"name{i}", f"user{i}@example.com") for i in range(1, 31)],
        )
    return name


def _run(tmp_path, doc: dict) -> dict:
    from sluice.local.run import run_local

    (tmp_path / "people_transforms.py").write_text(textwrap.dedent(MODULE))
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(doc))
    out = io.StringIO()
    run_local(path, as_json=True, out=out, err=io.StringIO(), state_dir=tmp_path / "state")
    return json.loads(out.getvalue())


def test_a_user_transform_shapes_rows_for_a_mysql_target(
    tmp_path, mysql_env, people, connect, new_database
):
    target = new_database("ut_dst")
    with connect(target).cursor() as cur:
        cur.execute(
            "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, "
            "email VARCHAR(80), initials VARCHAR(8) NULL)"
        )
    doc = {
        "version": 1,
        "source": {"database": people},
        "target": {"kind": "mysql", "database": target},
        "defaults": {"page_size": 10},
        "tables": [
            {
                "source": "people",
                "key": ["id"],
                "transform": "people_transforms:shape",
                "target": {"table": "people"},
            }
        ],
    }
    summary = _run(tmp_path, doc)
    assert summary["status"] == "SUCCEEDED", summary["verdict"]
    t = summary["tables"]["people"]
    # Page 1 (ids 1-10) holds user 7: its ten rows are rejected with the function's error.
    # Pages 2 and 3 lose ids 20 and 30, rejected as dropped; 18 rows arrive.
    assert (t["extracted"], t["loaded"], t["rejected"]) == (30, 18, 12)
    with connect(target).cursor() as cur:
        cur.execute("SELECT id, email, initials FROM people ORDER BY id")
        rows = cur.fetchall()
    assert [r[0] for r in rows] == [i for i in range(11, 31) if i % 10]
    assert rows[0] == (11, "USER11@EXAMPLE.COM", "NA")


def test_a_user_transform_returning_columns_the_target_lacks_rejects_its_rows(
    tmp_path, mysql_env, people, new_database
):
    target = new_database("ut_dst2")  # created by the run from the source: no `initials` column
    doc = {
        "version": 1,
        "source": {"database": people},
        "target": {"kind": "mysql", "database": target},
        "defaults": {"page_size": 10},
        "tables": [
            {
                "source": "people",
                "key": ["id"],
                "transform": "people_transforms:shape",
                "target": {"table": "people"},
            }
        ],
    }
    summary = _run(tmp_path, doc)
    t = summary["tables"]["people"]
    assert summary["status"] == "SUCCEEDED"
    assert (t["extracted"], t["loaded"], t["rejected"]) == (30, 0, 30)


def test_a_user_transform_feeds_dynamodb_items(tmp_path, mysql_env, people):
    doc = {
        "version": 1,
        "source": {"database": people},
        "target": {"kind": "dynamodb", "tables": {"people": {"partition_key": "PK"}}},
        "defaults": {"page_size": 10},
        "tables": [
            {
                "source": "people",
                "key": ["id"],
                "transform": "people_transforms:shape",
                "target": {
                    "table": "people",
                    "partition_key": "P#{id}",
                    "attributes": {"GSI1PK": "I#{initials|lower}"},
                },
            }
        ],
    }
    summary = _run(tmp_path, doc)
    assert summary["status"] == "SUCCEEDED", summary["verdict"]
    t = summary["tables"]["people"]
    assert (t["extracted"], t["loaded"], t["rejected"]) == (30, 18, 12)


def test_a_contract_naming_a_missing_transform_is_refused_before_anything_runs(
    tmp_path, mysql_env, people
):
    doc = {
        "version": 1,
        "source": {"database": people},
        "target": {"kind": "dynamodb", "tables": {"people": {"partition_key": "PK"}}},
        "tables": [
            {
                "source": "people",
                "key": ["id"],
                "transform": "people_transforms:nope",
                "target": {"table": "people", "partition_key": "P#{id}"},
            }
        ],
    }
    summary = _run(tmp_path, doc)
    assert summary["status"] == "FAILED"
    assert (
        "$.tables[0].transform" in summary["verdict"]
        and "has no function 'nope'" in summary["verdict"]
    )
    assert summary["tables"] == {}
