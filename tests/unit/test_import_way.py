"""The import way without servers: contract settings, ImportTable parameters, manifest
progress, init's proposal, and the estimate that prices both ways."""

from __future__ import annotations

import copy
import json

import pytest
from sluice import cli, contract, ddb_import, estimate, scaffold
from sluice.errors import ContractError
from sluice.manifest import Manifest
from sluice.staging import PageRef, import_prefix

SHOP = {
    "version": 1,
    "source": {"database": "shop"},
    "target": {
        "kind": "dynamodb",
        "tables": {
            "shop": {
                "partition_key": "PK",
                "sort_key": "SK",
                "load": "import",
                "billing_mode": "PROVISIONED",
                "capacity": {"read_units": 5, "write_units": 7},
                "gsis": [
                    {"name": "GSI1", "partition_key": "GSI1PK", "sort_key": "GSI1SK"},
                    {"name": "ByEmail", "partition_key": "email_key"},
                ],
            },
            "audit": {"partition_key": "id"},
        },
    },
    "tables": [
        {
            "source": "users",
            "key": ["id"],
            "target": {
                "table": "shop",
                "partition_key": "USER#{id}",
                "sort_key": "PROFILE",
                "attributes": {"email_key": "{email|lower}"},
            },
        },
        {
            "source": "orders",
            "key": ["id"],
            "target": {
                "table": "shop",
                "partition_key": "USER#{user_id}",
                "sort_key": "ORDER#{id}",
                "attributes": {"GSI1PK": "ORDER#{id}", "GSI1SK": "{placed_at}"},
            },
        },
        {
            "source": "audit_log",
            "key": ["id"],
            "target": {"table": "audit", "partition_key": "{id}"},
        },
    ],
}


def bad(change) -> list[str]:
    doc = copy.deepcopy(SHOP)
    change(doc)
    with pytest.raises(ContractError) as exc:
        contract.parse(doc)
    return exc.value.problems


# ---------------------------------------------------------------- contract


def test_a_table_declares_how_its_items_arrive_and_what_an_import_creates():
    c = contract.parse(SHOP)
    shop, audit = c.dynamo_tables["shop"], c.dynamo_tables["audit"]
    assert (shop.load, shop.imports, audit.load, audit.imports) == ("import", True, "write", False)
    assert shop.capacity == (5, 7)
    assert [(g.name, g.partition_key, g.sort_key) for g in shop.gsis] == [
        ("GSI1", "GSI1PK", "GSI1SK"),
        ("ByEmail", "email_key", None),
    ]
    assert c.import_tables == (shop,)
    assert [s.source for s in c.sources_of("shop")] == ["users", "orders"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["target"]["tables"]["shop"].update(load="fast"),
            "$.target.tables.shop.load: 'fast' is not one of the allowed values: use one of 'write', 'import'",
        ),
        (
            lambda d: d["target"]["tables"]["audit"].update(
                gsis=[{"name": "X12", "partition_key": "id"}]
            ),
            '$.target.tables.audit.gsis: only for a table that an import creates ("load": "import")',
        ),
        (
            lambda d: d["target"]["tables"]["shop"].pop("capacity"),
            "$.target.tables.shop.capacity: required with billing_mode PROVISIONED",
        ),
        (
            lambda d: d["target"]["tables"]["shop"].update(billing_mode="PAY_PER_REQUEST"),
            "$.target.tables.shop.capacity: only with billing_mode PROVISIONED",
        ),
        (
            lambda d: d["target"]["tables"]["shop"]["gsis"].append(
                {"name": "ByCity", "partition_key": "city"}
            ),
            "$.target.tables.shop.gsis[2].partition_key: no entry of table 'shop' computes "
            "attribute 'city'",
        ),
        (
            lambda d: d["target"]["tables"]["shop"]["gsis"].append(
                {"name": "GSI1", "partition_key": "GSI1PK"}
            ),
            "$.target.tables.shop.gsis[2].name: 'GSI1' is also $.target.tables.shop.gsis[0]",
        ),
        (
            lambda d: d["target"]["tables"]["shop"]["gsis"][0].update(name="x"),
            "$.target.tables.shop.gsis[0].name: 'x' is not a DynamoDB index name",
        ),
    ],
)
def test_bad_import_settings_are_refused_with_their_json_path(change, expected):
    found = bad(change)
    assert any(p.startswith(expected) for p in found), found


# ---------------------------------------------------------------- ImportTable


def test_import_parameters_come_from_the_contract():
    shop = contract.parse(SHOP).dynamo_tables["shop"]
    params = ddb_import.table_creation_parameters(shop)
    assert params["TableName"] == "shop"
    assert params["KeySchema"] == [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ]
    assert params["AttributeDefinitions"] == [
        {"AttributeName": a, "AttributeType": "S"}
        for a in ("PK", "SK", "GSI1PK", "GSI1SK", "email_key")
    ]
    assert params["BillingMode"] == "PROVISIONED"
    assert params["ProvisionedThroughput"] == {"ReadCapacityUnits": 5, "WriteCapacityUnits": 7}
    gsi1, by_email = params["GlobalSecondaryIndexes"]
    assert gsi1["IndexName"] == "GSI1" and gsi1["Projection"] == {"ProjectionType": "ALL"}
    assert by_email["KeySchema"] == [{"AttributeName": "email_key", "KeyType": "HASH"}]
    assert by_email["ProvisionedThroughput"] == params["ProvisionedThroughput"]
    on_demand = contract.parse(
        {
            **SHOP,
            "target": {
                "kind": "dynamodb",
                "tables": {"t12": {"partition_key": "PK", "load": "import"}},
            },
            "tables": [
                {"source": "a", "key": ["id"], "target": {"table": "t12", "partition_key": "{id}"}}
            ],
        }
    ).dynamo_tables["t12"]
    p = ddb_import.table_creation_parameters(on_demand)
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert "ProvisionedThroughput" not in p and "GlobalSecondaryIndexes" not in p


def test_the_client_token_is_the_same_for_a_retry_and_new_for_the_next_attempt():
    token = ddb_import.client_token("run-1", "shop", 1)
    assert token == ddb_import.client_token("run-1", "shop", 1)
    assert token != ddb_import.client_token("run-1", "shop", 2)
    assert token != ddb_import.client_token("run-2", "shop", 1)
    assert token != ddb_import.client_token("run-1", "shop2", 1)
    assert len(token) == 32 and "$" not in token


def test_each_target_table_has_its_own_import_prefix_without_a_notification_suffix():
    ref = PageRef("r1", "users", 7)
    assert import_prefix("r1", "shop") == "runs/r1/import/shop/"
    assert ref.import_key("shop") == "runs/r1/import/shop/users-p000007.import.json.gz"
    # Not one of the suffixes that start the load stage.
    assert not ref.import_key("shop").endswith((".transformed.ddb.json.gz", ".transformed.arrow"))
    assert not import_prefix("r1", "shop2").startswith(import_prefix("r1", "shop"))


# ---------------------------------------------------------------- manifest


@pytest.fixture
def manifest(manifest_table) -> Manifest:
    table = manifest_table
    return Manifest(table)


def test_import_way_pages_are_done_when_transformed_and_loaded_once_imported(manifest):
    refs = [PageRef("r1", "users", p) for p in (1, 2)]
    manifest.record_plan(
        "r1",
        {},
        [{"table": "users", "target_table": "shop", "pages": 2, "load": "import"}],
        [(r, {"page": r.page}) for r in refs],
    )
    for r in refs:
        manifest.advance(r, "extracted", {"extracted": 10})
        manifest.advance(r, "transformed", {"transformed": 9, "rejected": 1})
    t = manifest.progress("r1")["users"]
    assert (t.pages_loaded, t.done, t.transformed, t.loaded, t.import_status) == (
        2,
        True,
        18,
        0,
        None,
    )

    manifest.record_import("r1", "shop", status="IN_PROGRESS", expected=18, imported=0, errors=0)
    assert manifest.progress("r1")["users"].loaded == 0
    manifest.record_import("r1", "shop", status="COMPLETED", imported=17, ended_at=5.0)
    t = manifest.progress("r1")["users"]
    assert (t.import_status, t.loaded) == ("COMPLETED", 0)  # one item short: not loaded
    manifest.record_import("r1", "shop", imported=18)
    t = manifest.progress("r1")["users"]
    assert (t.import_status, t.loaded, t.rejected) == ("COMPLETED", 18, 2)
    assert manifest.imports("r1")["shop"]["expected"] == 18


# ---------------------------------------------------------------- init


def test_init_proposes_import_offline_and_write_at_an_endpoint(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    load, why = scaffold.proposed_load("shop")
    assert load == "import"
    assert "did not check your AWS account" in why and '"write"' in why
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://localhost:8000")
    load, why = scaffold.proposed_load("shop")
    assert load == "write" and "http://localhost:8000" in why


# ---------------------------------------------------------------- estimate


def test_a_billion_200_byte_items_cost_625_dollars_by_writes_and_30_by_import():
    e = estimate.estimate(1_000_000_000, 200)
    assert e.write.cost == pytest.approx(625.0)
    assert e.import_.cost == pytest.approx(30.0)
    assert e.write.seconds == pytest.approx(1e9 / estimate.DEFAULT_WRITE_RATE)
    assert e.import_.seconds == pytest.approx(
        200 / estimate.IMPORT_GB_PER_HOUR * 3600 + estimate.IMPORT_SETUP_SECONDS
    )
    assert (e.cheaper, e.faster) == ("import", "import")


def test_write_units_count_every_started_kilobyte_and_every_index():
    assert estimate.write_units(1) == 1
    assert estimate.write_units(1024) == 1
    assert estimate.write_units(1025) == 2
    assert estimate.write_units(3000, gsis=2) == 9
    # A few small items: the import's start-up makes writes the faster way.
    small = estimate.estimate(1000, 300)
    assert small.faster == "write" and small.cheaper == "import"


def test_lambda_compute_counts_each_stage_of_a_way_at_the_assumed_cpu_rate():
    rate = estimate.ROWS_PER_CPU_SECOND
    e = estimate.estimate(1_000_000, 200)
    staged = 1e6 / rate["extract"] + 1e6 / rate["transform_dynamodb"] + 1e6 / rate["gzip"]
    assert e.compute("import").seconds == pytest.approx(staged)
    assert e.compute("write").seconds == pytest.approx(staged + 1e6 / rate["load_dynamodb"])
    # Below a full vCPU, a CPU-bound second bills 1769/1024 GB-seconds.
    assert e.compute("write").cost == pytest.approx(
        e.compute("write").seconds * 1769 / 1024 * estimate.LAMBDA_PRICE_PER_GB_SECOND
    )
    assert e.to_dict()["lambda_compute"]["import"] == {
        "cost_usd": pytest.approx(e.compute("import").cost),
        "cpu_seconds": pytest.approx(staged),
    }


def test_plan_estimate_prints_both_ways_for_a_billion_rows_without_a_database(capsys):
    argv = ["plan", "--estimate", "--rows", "1000000000", "--item-bytes", "200"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "1,000,000,000" in out
    assert "$625.00" in out and "$30.00" in out  # both costs
    assert "2.9 days" in out and "4.1 h" in out  # both durations
    assert "import is cheaper by $595.00" in out and "import is faster" in out
    assert "us-east-1, as of 2026" in out and "$0.625 per million write request units" in out
    assert "$0.15 per GB" in out
    assert "Lambda compute besides: $" in out and "rows per CPU-second extract" in out

    assert cli.main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (row,) = doc["tables"]
    assert row["write"] == {"cost_usd": pytest.approx(625.0), "seconds": pytest.approx(250_000)}
    assert row["import"]["cost_usd"] == pytest.approx(30.0)
    assert (row["cheaper"], row["faster"]) == ("import", "import")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "--rows", "5", "--item-bytes", "10"], "add --estimate"),
        (["plan", "--estimate", "--rows", "5"], "--rows and --item-bytes go together"),
        (["plan", "--estimate"], "give --contract FILE"),
    ],
)
def test_plan_says_what_it_needs(argv, message, capsys):
    assert cli.main(argv) == 1
    assert message in capsys.readouterr().err
