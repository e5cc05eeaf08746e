"""Bad contracts are refused before anything runs, each problem named by its JSON path with a fix.

Every case is a demo contract with one mutation, checked against a live demo database twice:
by `sluice validate FILE --live`, and by the real Plan handler in the local stack, which must
refuse it before it stages an object, records a manifest item, creates a DynamoDB table or
creates the MySQL target database.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sluice import aws
from sluice.cli import main
from sluice.demo import dynamodb_contract, mysql_contract
from sluice.errors import ContractError

pytestmark = pytest.mark.mysql

Edit = Callable[[dict], None]


def _steps(path: str) -> list[str | int]:
    """`tables[0].target.sort_key` -> ["tables", 0, "target", "sort_key"]."""
    return [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]


def put(path: str, value) -> Edit:
    *parents, last = _steps(path)

    def edit(doc: dict) -> None:
        node = doc
        for p in parents:
            node = node[p]
        node[last] = value

    return edit


def drop(path: str) -> Edit:
    *parents, last = _steps(path)

    def edit(doc: dict) -> None:
        node = doc
        for p in parents:
            node = node[p]
        del node[last]

    return edit


def both(*edits: Edit) -> Edit:
    def edit(doc: dict) -> None:
        for e in edits:
            e(doc)

    return edit


@dataclass(frozen=True)
class Bad:
    """One mutation of a demo contract and the problem it must be refused with."""

    id: str
    edit: Edit
    path: str  # the JSON path the problem is reported at
    fix: str  # words of the fix the message must give
    target: str = "dynamodb"


# The demo contracts list, for both targets: users, orders, order_items (key order_id, line_no),
# order_totals (a view), products (key sku), categories.
CASES = [
    Bad(
        "unknown-table-in-other-case",
        put("tables[0].source", "Users"),
        "$.tables[0].source",
        "(did you mean 'users'?)",
    ),
    Bad(
        "unknown-table",
        put("tables[1].source", "payments"),
        "$.tables[1].source",
        "check its spelling, or remove this entry",
    ),
    Bad(
        "unknown-key-column",
        put("tables[1].key", ["order_no"]),
        "$.tables[1].key[0]",
        "use one of currency, id, note",
    ),
    Bad(
        "unknown-include-column",
        put("tables[0].columns", {"include": ["id", "emial"]}),
        "$.tables[0].columns.include[1]",
        "(did you mean 'email'?)",
    ),
    Bad(
        "unknown-exclude-column",
        put("tables[4].columns", {"exclude": ["thumb"]}),
        "$.tables[4].columns.exclude[0]",
        "(did you mean 'thumbnail'?)",
    ),
    Bad(
        "unknown-rename-column",
        put("tables[0].columns", {"rename": {"fullname": "name"}}),
        "$.tables[0].columns.rename.fullname",
        "(did you mean 'full_name'?)",
    ),
    Bad(
        "partition-key-template-names-missing-column",
        put("tables[1].target.partition_key", "USER#{customer}"),
        "$.tables[1].target.partition_key",
        "use one of currency, id, note",
    ),
    Bad(
        "sort-key-template-names-missing-column",
        put("tables[2].target.sort_key", "ITEM#{line}"),
        "$.tables[2].target.sort_key",
        "(did you mean 'line_no'?)",
    ),
    Bad(
        "attribute-template-names-missing-column",
        put("tables[0].target.attributes.GSI1PK", "EMAIL#{mail}"),
        "$.tables[0].target.attributes.GSI1PK",
        "(did you mean 'email'?)",
    ),
    Bad(
        "duplicate-target-keys-across-entities",
        both(
            put("tables[5].target.partition_key", "USER#{id}"),
            put("tables[5].target.sort_key", "PROFILE"),
        ),
        "$.tables[5].target",
        "give each entity its own prefix",
    ),
    Bad(
        "view-without-declared-key",
        drop("tables[3].key"),
        "$.tables[3]",
        "a view has no primary key, so declare them",
    ),
    Bad(
        "key-not-the-primary-key",
        put("tables[2].key", ["order_id"]),
        "$.tables[2].key",
        'set it to ["order_id", "line_no"]',
    ),
    Bad(
        "page-size-as-string",
        put("defaults.page_size", "5000"),
        "$.defaults.page_size",
        "write it without quotes",
    ),
    Bad(
        "page-size-zero",
        put("tables[0].page_size", 0),
        "$.tables[0].page_size",
        "use a number from 1 to 200000",
    ),
    Bad("version-2", put("version", 2), "$.version", "set it to 1"),
    Bad(
        "target-kind-postgres",
        put("target.kind", "postgres"),
        "$.target.kind",
        "use 'dynamodb' or 'mysql'",
    ),
    Bad(
        "null-values-not-allowed",
        put("target.null_values", "none"),
        "$.target.null_values",
        "use one of 'omit', 'null'",
    ),
    Bad(
        "no-tables",
        put("tables", []),
        "$.tables",
        "list at least one table",
    ),
    Bad(
        "misspelled-property",
        put("tables[0].colums", {"exclude": ["profile"]}),
        "$.tables[0]",
        "(did you mean 'columns'?)",
    ),
    Bad(
        "types-encoding-not-allowed-for-varchar",
        put("tables[0].target.types", {"email": "epoch_seconds"}),
        "$.tables[0].target.types.email",
        "choose one of: json, number, string",
    ),
    Bad(
        "password-in-source-url",
        put("source.url", "mysql://reader:s3cret@127.0.0.1:3306"),
        "$.source.url",
        "remove it",
    ),
    Bad(
        "dynamodb-table-not-declared",
        put("tables[4].target.table", "catalog"),
        "$.tables[4].target.table",
        "declare it there, or use one of 'shop'",
    ),
    Bad(
        "sort-key-missing",
        drop("tables[5].target.sort_key"),
        "$.tables[5].target.sort_key",
        "give a template",
    ),
    Bad(
        "write-rate-below-one-unit",
        put("target.tables.shop.write_rate", {"units_per_second": 0.5}),
        "$.target.tables.shop.write_rate.units_per_second",
        "use 1 or more",
    ),
    Bad(
        "write-rate-share-above-the-whole",
        put("target.tables.shop.write_rate", {"share_of_provisioned": 1.5}),
        "$.target.tables.shop.write_rate.share_of_provisioned",
        "use a number above 0 and at most 1",
    ),
    Bad(
        "write-rate-misspelled",
        put("target.tables.shop.write_rate", {"unit_per_second": 500}),
        "$.target.tables.shop.write_rate",
        "(did you mean 'units_per_second'?)",
    ),
    Bad(
        "write-rate-both-ways",
        put(
            "target.tables.shop.write_rate", {"units_per_second": 500, "share_of_provisioned": 0.5}
        ),
        "$.target.tables.shop.write_rate",
        "give units_per_second or share_of_provisioned, not both",
    ),
    Bad(
        "write-rate-on-an-import",
        both(
            put("target.tables.shop.load", "import"),
            put("target.tables.shop.write_rate", {"units_per_second": 500}),
        ),
        "$.target.tables.shop.write_rate",
        "an import uses no write capacity",
    ),
    Bad(
        "types-on-mysql-target",
        put("tables[0].target.types", {"id": "string"}),
        "$.tables[0].target.types",
        "only for DynamoDB targets: remove it",
        target="mysql",
    ),
    Bad(
        "mysql-view-without-declared-key",
        drop("tables[3].key"),
        "$.tables[3]",
        "a view has no primary key, so declare them",
        target="mysql",
    ),
    Bad(
        "mysql-unknown-table",
        put("tables[5].source", "category"),
        "$.tables[5].source",
        "(did you mean 'categories'?)",
        target="mysql",
    ),
    Bad(
        "mysql-key-not-the-primary-key",
        put("tables[2].key", ["line_no"]),
        "$.tables[2].key",
        'set it to ["order_id", "line_no"]',
        target="mysql",
    ),
]


def demo_contract(kind: str, source_db: str, target_db: str) -> dict:
    """The demo's contract for a target kind, reading `source_db` (and writing `target_db`)."""
    doc = dynamodb_contract() if kind == "dynamodb" else mysql_contract()
    doc["source"]["database"] = source_db
    if kind == "mysql":
        doc["target"]["database"] = target_db
    return doc


def bad_contract(case: Bad, source_db: str, target_db: str) -> dict:
    doc = demo_contract(case.target, source_db, target_db)
    case.edit(doc)
    return doc


@pytest.fixture
def target_db_name(connect):
    """A MySQL target database name nobody has created; dropped afterwards should a test fail."""
    name = f"sluice_test_badcopy_{uuid.uuid4().hex[:8]}"
    yield name
    with connect().cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def database_exists(connect, name: str) -> bool:
    with connect().cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
        return cur.fetchone() is not None


def written(st, connect, target_db: str, tables_before: list[str]) -> dict:
    """What a Plan left behind: staged objects, manifest items, new DynamoDB tables, the target database."""
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    staged = s3.list_objects_v2(Bucket=st.environment["SLUICE_BUCKET"], Prefix="runs/")
    return {
        "staged": [o["Key"] for o in staged.get("Contents", [])],
        "manifest_items": ddb.scan(TableName=st.environment["SLUICE_MANIFEST_TABLE"])["Count"],
        "new_dynamodb_tables": sorted(set(ddb.list_tables()["TableNames"]) - set(tables_before)),
        "target_database": database_exists(connect, target_db),
    }


NOTHING = {"staged": [], "manifest_items": 0, "new_dynamodb_tables": [], "target_database": False}


def test_cases_are_distinct():
    assert len({c.id for c in CASES}) == len(CASES) >= 12
    assert len({(c.target, c.path, c.fix) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("kind", ["dynamodb", "mysql"])
def test_the_unmutated_demo_contract_passes_and_its_plan_writes(
    kind, local_stack, demo_source, target_db_name, connect, tmp_path, capsys
):
    # The control for the cases below: the same checks do see what a plan writes.
    doc = demo_contract(kind, demo_source, target_db_name)
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(doc))
    assert main(["validate", str(path), "--live"]) == 0, capsys.readouterr().err
    tables_before = aws.client("dynamodb").list_tables()["TableNames"]
    run_id = f"good-{uuid.uuid4().hex[:8]}"

    local_stack.invoke("PlanFunction", {"contract": doc, "run_id": run_id})

    after = written(local_stack, connect, target_db_name, tables_before)
    assert f"runs/{run_id}/contract.json" in after["staged"]
    assert after["manifest_items"] > 0
    assert after["new_dynamodb_tables"] == (["shop"] if kind == "dynamodb" else [])
    assert after["target_database"] is (kind == "mysql")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_contract_is_refused_with_its_path_and_fix_before_anything_runs(
    case, local_stack, demo_source, target_db_name, connect, tmp_path, capsys
):
    doc = bad_contract(case, demo_source, target_db_name)
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(doc))

    # sluice validate FILE --live
    assert main(["validate", str(path), "--live"]) == 1
    err = capsys.readouterr().err
    header, *lines = err.splitlines()
    listed = [line.strip() for line in lines]
    assert header == f"{path}: {len(listed)} problem(s)"
    assert all(line.startswith("$") for line in listed), err
    found = [line for line in listed if line.startswith(f"{case.path}: ")]
    assert found, f"no problem at {case.path}:\n{err}"
    assert any(case.fix in line for line in found), err
    assert "s3cret" not in err

    # The Plan handler refuses the same problems and writes nothing.
    tables_before = aws.client("dynamodb").list_tables()["TableNames"]
    with pytest.raises(ContractError) as refused:
        local_stack.invoke(
            "PlanFunction", {"contract": doc, "run_id": f"bad-{uuid.uuid4().hex[:8]}"}
        )
    assert refused.value.problems == listed
    assert written(local_stack, connect, target_db_name, tables_before) == NOTHING
