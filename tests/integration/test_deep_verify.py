"""Deep verification: a run's pages read back from the target name each page and key that
differs; staged objects that changed after they were written are refused by the next stage.

Each test migrates a small MariaDB table through the local stack (the real state machine and
handlers, moto for AWS), then changes the target behind the run's back and verifies.
"""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pytest
from sluice import aws, stages, staging, verify_deep
from sluice.errors import PageError
from sluice.staging import PageRef

from .test_rejects import refusing_target
from .test_state_machine import run

pytestmark = [pytest.mark.mysql, pytest.mark.slow]

# 35 rows, ids 2, 4, ... 70 (gaps, so a row can be added inside a page's range); pages of 10:
# page 1 holds ids 2..20, page 2 ids 22..40, page 3 ids 42..60, page 4 ids 62..70.
IDS = list(range(2, 71, 2))
DDB_TABLE = "dv_items"


@pytest.fixture
def source(new_database, connect) -> str:
    db = new_database("dv_src")
    with connect(db).cursor() as cur:
        cur.execute(
            "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, "
            "price DECIMAL(8,2), seen DATETIME(6), data BLOB)"
        )
        cur.executemany(
            "INSERT INTO items VALUES (%s, %s, %s, %s, %s)",
            [
                (
                    i,
                    f"item {i}",
                    None if i % 7 == 0 else f"{i}.50",
                    f"2024-01-02 03:04:{i % 60:02d}.{i:06d}",
                    None if i % 5 == 0 else bytes([i, 0, 255]),
                )
                for i in IDS
            ],
        )
    return db


def mysql_contract(source: str, target: str) -> dict:
    return {
        "version": 1,
        "source": {"database": source},
        "target": {"kind": "mysql", "database": target},
        "defaults": {"page_size": 10},
        "tables": [{"source": "items", "key": ["id"], "target": {"table": "items"}}],
    }


def dynamodb_contract(source: str) -> dict:
    return {
        "version": 1,
        "source": {"database": source},
        "target": {
            "kind": "dynamodb",
            "tables": {DDB_TABLE: {"partition_key": "PK", "sort_key": "SK"}},
        },
        "defaults": {"page_size": 10},
        "tables": [
            {
                "source": "items",
                "key": ["id"],
                "target": {"table": DDB_TABLE, "partition_key": "ITEM#{id}", "sort_key": "ITEM"},
            }
        ],
    }


def deep_verify(st, run_id: str) -> dict:
    """The verify function, invoked as `sluice verify --run ID` invokes it."""
    return st.invoke("VerifyFunction", {"run_id": run_id, "deep": True})


def mismatches(report: dict, table: str = "items") -> dict[int, dict]:
    return {p["page"]: p for p in report["tables"][table]["mismatched"]}


# ---------------------------------------------------------------- MySQL target


def test_an_untouched_mysql_run_verifies_page_by_page(local_stack, source, new_database):
    target = new_database("dv_dst")
    desc, _ = run(local_stack, mysql_contract(source, target), "dv-mysql-clean")
    assert desc["status"] == "SUCCEEDED", desc.get("cause")

    report = deep_verify(local_stack, "dv-mysql-clean")

    assert report["ok"] is True, report["verdict"]
    t = report["tables"]["items"]
    assert (t["pages"], t["checked"], t["matched"], t["mismatched"], t["unchecked"]) == (
        4,
        4,
        4,
        [],
        [],
    )
    assert report["verdict"].startswith("VERIFIED (deep): 4 pages")
    # Every page recorded its rows' checksums at each stage.
    items = stages._manifest(local_stack.environment["SLUICE_MANIFEST_TABLE"]).items(
        "dv-mysql-clean"
    )
    pages = [it for it in items if it["sk"].startswith("PAGE#")]
    assert all(it.get(f) for it in pages for f in ("extract_sum", "transform_sum", "loaded_sum"))


def test_deep_verify_names_each_changed_deleted_and_added_mysql_row(
    local_stack, source, new_database, connect
):
    target = new_database("dv_dst")
    desc, _ = run(local_stack, mysql_contract(source, target), "dv-mysql")
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    with connect(target).cursor() as cur:
        cur.execute("UPDATE items SET price = price + 0.01 WHERE id = 8")  # page 1
        cur.execute(
            "INSERT INTO items VALUES (23, 'intruder', NULL, NULL, NULL)"  # inside page 2
        )
        cur.execute("DELETE FROM items WHERE id = 46")  # page 3

    report = deep_verify(local_stack, "dv-mysql")

    assert report["ok"] is False
    bad = mismatches(report)
    assert sorted(bad) == [1, 2, 3]
    assert bad[1]["different"] == [{"key": {"id": 8}, "column": "price"}]
    assert (bad[1]["missing"], bad[1]["extra"]) == ([], [])
    assert bad[2]["extra"] == [{"id": 23}]
    assert (bad[2]["missing"], bad[2]["different"]) == ([], [])
    assert bad[3]["missing"] == [{"id": 46}]
    assert (bad[3]["extra"], bad[3]["different"]) == ([], [])
    t = report["tables"]["items"]
    assert (t["checked"], t["matched"]) == (4, 1)
    assert "items: 3 of 4 pages differ (pages 1, 2, 3)" in report["verdict"]
    # The count checks ran beside it (one row fewer, one more: the count still matches).
    assert report["counts"]["tables"]["items"]["target_rows"] == len(IDS)
    shown = verify_deep.render(report)
    assert "different  id=8 (first differing: price)" in shown
    assert "extra      id=23" in shown
    assert "missing    id=46" in shown


def test_rows_the_mysql_target_refused_are_reported_as_rejected_not_as_mismatches(
    local_stack, connect, new_database
):
    source, target = refusing_target(connect, new_database, 40, prefix="dv_rej")
    desc, _ = run(local_stack, mysql_contract(source, target), "dv-rejects")
    assert desc["status"] == "SUCCEEDED", desc.get("cause")

    clean = deep_verify(local_stack, "dv-rejects")
    with connect(target).cursor() as cur:
        cur.execute("DELETE FROM items WHERE id = 3")  # page 1, which also has rejected rows
    changed = deep_verify(local_stack, "dv-rejects")

    refused = [i for i in range(1, 41) if i % 7 >= 5]
    assert clean["ok"] is True, clean["verdict"]
    assert clean["tables"]["items"]["rejected_rows"] == len(refused)
    (page,) = changed["tables"]["items"]["mismatched"]
    assert page["page"] == 1
    assert page["missing"] == [{"id": 3}]
    assert sorted(k["id"] for k in page["rejected"]) == [i for i in refused if i <= 10]
    assert page["counts"]["missing"] == 1


# ---------------------------------------------------------------- DynamoDB target


def test_an_untouched_dynamodb_run_verifies_item_by_item(local_stack, source):
    desc, _ = run(local_stack, dynamodb_contract(source), "dv-ddb-clean")
    assert desc["status"] == "SUCCEEDED", desc.get("cause")

    report = deep_verify(local_stack, "dv-ddb-clean")

    assert report["ok"] is True, report["verdict"]
    t = report["tables"]["items"]
    assert (t["checked"], t["matched"], t["mismatched"]) == (4, 4, [])
    assert report["dynamodb_tables"][DDB_TABLE] == {"extra": [], "extra_count": 0}


def test_deep_verify_names_each_changed_deleted_and_added_dynamodb_item(local_stack, source):
    desc, _ = run(local_stack, dynamodb_contract(source), "dv-ddb")
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    ddb = aws.client("dynamodb")
    ddb.update_item(
        TableName=DDB_TABLE,
        Key={"PK": {"S": "ITEM#8"}, "SK": {"S": "ITEM"}},
        UpdateExpression="SET #n = :v",
        ExpressionAttributeNames={"#n": "name"},
        ExpressionAttributeValues={":v": {"S": "item 8 (edited)"}},
    )
    ddb.delete_item(TableName=DDB_TABLE, Key={"PK": {"S": "ITEM#46"}, "SK": {"S": "ITEM"}})
    # A number spelled another way is the same number: not a difference.
    ddb.update_item(
        TableName=DDB_TABLE,
        Key={"PK": {"S": "ITEM#62"}, "SK": {"S": "ITEM"}},
        UpdateExpression="SET price = :v",
        ExpressionAttributeValues={":v": {"N": "62.500"}},
    )
    ddb.put_item(TableName=DDB_TABLE, Item={"PK": {"S": "ITEM#999"}, "SK": {"S": "ITEM"}})

    report = deep_verify(local_stack, "dv-ddb")

    assert report["ok"] is False
    bad = mismatches(report)
    assert sorted(bad) == [1, 3]
    assert bad[1]["different"] == [
        {"key": {"PK": "ITEM#8", "SK": "ITEM", "source_key": "8"}, "column": "name"}
    ]
    assert bad[1]["missing"] == []
    assert bad[3]["missing"] == [{"PK": "ITEM#46", "SK": "ITEM", "source_key": "46"}]
    assert bad[3]["different"] == []
    assert report["dynamodb_tables"][DDB_TABLE] == {
        "extra": [{"PK": "ITEM#999", "SK": "ITEM"}],
        "extra_count": 1,
    }


# ---------------------------------------------------------------- staged objects changed


def _plan_and_extract(st, doc: dict, run_id: str) -> tuple[stages.Context, PageRef]:
    """Plan a run and extract its first page by calling the stages (no queues in between)."""
    ctx = stages.context()
    stages.plan_run(ctx, {"contract": doc, "run_id": run_id})
    batches = json.loads(ctx.get(staging.plan_batches_key(run_id)))
    message = json.loads(batches[0]["Entries"][0]["MessageBody"])
    stages.extract_page(ctx, message)
    return ctx, PageRef.from_dict(message)


def _tampered_arrow(body: bytes) -> bytes:
    """The same page with one value changed, written as the stages write pages."""
    page = staging.read_arrow(body)
    i = page.column_names.index("name")
    names = page.column("name").to_pylist()
    names[0] = names[0] + "!"
    page = page.set_column(i, page.field(i), pa.array(names, page.field(i).type))
    return staging.write_arrow(page.schema, page.to_batches())[0]


def test_a_changed_extracted_page_is_refused_by_the_transform_naming_the_page(
    unwired_stack, source, new_database
):
    ctx, ref = _plan_and_extract(
        unwired_stack, mysql_contract(source, new_database("dv_dst")), "dv-tamper-x"
    )
    key = ref.key(staging.EXTRACTED)
    good = ctx.get(key)
    ctx.put(key, _tampered_arrow(good))

    with pytest.raises(PageError, match=r"page items#1 of run dv-tamper-x: the staged object"):
        stages.transform_page(ctx, key)
    assert ctx.manifest.page(ref)["status"] == "extracted"

    ctx.put(key, good)
    assert stages.transform_page(ctx, key)["rows"] == 10


@pytest.mark.parametrize("kind", ["mysql", "dynamodb"])
def test_a_changed_transformed_page_is_refused_by_the_load_before_it_writes(
    kind, unwired_stack, source, new_database, connect
):
    target = new_database("dv_dst")
    doc = mysql_contract(source, target) if kind == "mysql" else dynamodb_contract(source)
    run_id = f"dv-tamper-{kind}"
    ctx, ref = _plan_and_extract(unwired_stack, doc, run_id)
    stages.transform_page(ctx, ref.key(staging.EXTRACTED))
    key = ref.key(staging.TRANSFORMED, kind)
    good = ctx.get(key)
    if kind == "mysql":
        ctx.put(key, _tampered_arrow(good))
    else:
        lines = gzip.decompress(good).replace(b'"item 2"', b'"item 2!"', 1)
        ctx.put(key, gzip.compress(lines))

    with pytest.raises(PageError, match=rf"page items#1 of run {run_id}: the staged object"):
        stages.load_page(ctx, key)

    assert ctx.manifest.page(ref)["status"] == "transformed"
    if kind == "mysql":
        with connect(target).cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM items")
            assert cur.fetchone()[0] == 0
    else:
        assert aws.client("dynamodb").scan(TableName=DDB_TABLE, Select="COUNT")["Count"] == 0
    ctx.put(key, good)
    assert stages.load_page(ctx, key)["rows"] == 10


# ---------------------------------------------------------------- a saved local run


def test_verify_local_reads_a_saved_local_run_back_from_its_target(
    source, new_database, connect, mysql_env, tmp_path, capsys
):
    from sluice import cli
    from sluice.local.runtime import LocalStack
    from sluice.local.state import LocalState

    target = new_database("dv_dst")
    doc = mysql_contract(source, target)
    folder = tmp_path / "dv-local"
    state = LocalState(folder)
    state.write_meta(run_id="dv-local", contract=doc)
    with LocalStack() as st:
        desc, _ = run(st, doc, "dv-local")
        assert desc["status"] == "SUCCEEDED", desc.get("cause")
        state.save(st, "dv-local", parts=("manifest", "s3"))
    stages.reset_caches()  # `sluice verify` is a process of its own
    aws.reset_clients()
    with connect(target).cursor() as cur:
        cur.execute("DELETE FROM items WHERE id = 64")  # page 4

    code = cli.main(["verify", "--local", "--run", "dv-local", "--state-dir", str(folder)])

    out = capsys.readouterr().out
    assert code == 1
    assert "page 4: 1 row missing from the target" in out
    assert "missing    id=64" in out
    assert "NOT VERIFIED (deep): items: 1 of 4 pages differ (pages 4)" in out


def test_verify_local_refuses_a_saved_run_without_its_staged_pages(tmp_path, capsys):
    from sluice import cli
    from sluice.local.state import LocalState

    LocalState(tmp_path / "r0").write_meta(run_id="r0", contract={})

    code = cli.main(["verify", "--local", "--run", "r0", "--state-dir", str(tmp_path / "r0")])

    assert code == 1
    assert "run r0: its saved state" in capsys.readouterr().err


# ---------------------------------------------------------------- legacy checksums


def _record_as_before(ctx, ref: PageRef, field: str, value: str) -> None:
    """Set a page's recorded sum as an earlier Sluice (BLAKE2b sums) recorded it."""
    from sluice.manifest import _page_sk, _pk

    ctx.manifest.table.update_item(
        Key={"pk": _pk(ref.run_id), "sk": _page_sk(ref)},
        UpdateExpression="SET #f = :v",
        ExpressionAttributeNames={"#f": field},
        ExpressionAttributeValues={":v": value},
    )


@pytest.mark.parametrize("kind", ["mysql", "dynamodb"])
def test_a_run_begun_before_the_upgrade_is_checked_against_its_legacy_sums(
    kind, unwired_stack, source, new_database
):
    from sluice import checksum

    target = new_database("dv_dst")
    doc = mysql_contract(source, target) if kind == "mysql" else dynamodb_contract(source)
    run_id = f"dv-legacy-{kind}"
    ctx, ref = _plan_and_extract(unwired_stack, doc, run_id)
    x_key = ref.key(staging.EXTRACTED)
    assert ctx.manifest.page(ref)["extract_sum"].startswith(checksum.TAG)  # this Sluice's
    before = checksum.page_sum(staging.read_arrow(ctx.get(x_key)), old=True)
    assert checksum.legacy(before) and len(before) == 32
    _record_as_before(ctx, ref, "extract_sum", before)
    stages.transform_page(ctx, x_key)  # the legacy sum matches the page: it goes on

    t_key = ref.key(staging.TRANSFORMED, kind)
    good = ctx.get(t_key)
    if kind == "mysql":
        before = checksum.page_sum(staging.read_arrow(good), old=True)
        tampered = _tampered_arrow(good)
    else:
        before = checksum.lines_sum(gzip.decompress(good), old=True)
        tampered = gzip.compress(gzip.decompress(good).replace(b'"item 2"', b'"item 2!"', 1))
    _record_as_before(ctx, ref, "transform_sum", before)
    ctx.put(t_key, tampered)
    with pytest.raises(PageError, match=rf"page items#1 of run {run_id}: the staged object"):
        stages.load_page(ctx, t_key)  # a legacy sum still catches a changed page
    ctx.put(t_key, good)
    assert stages.load_page(ctx, t_key)["rows"] == 10
    assert ctx.manifest.page(ref)["loaded_sum"].startswith(checksum.TAG)
