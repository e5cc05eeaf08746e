"""The migration contract: valid documents type, invalid ones are refused path by path."""

from __future__ import annotations

import copy
import json

import pytest
from sluice import contract
from sluice.errors import ContractError

DYNAMO = {
    "version": 1,
    "source": {"database": "shop", "url": "mysql://reader@db.internal:3306"},
    "target": {
        "kind": "dynamodb",
        "tables": {
            "shop": {"partition_key": "PK", "sort_key": "SK"},
            "audit": {"partition_key": "id"},
        },
    },
    "defaults": {"page_size": 500},
    "tables": [
        {
            "source": "users",
            "key": ["id"],
            "target": {
                "table": "shop",
                "partition_key": "USER#{id}",
                "sort_key": "PROFILE",
                "attributes": {"GSI1PK": "EMAIL#{email}"},
            },
        },
        {
            "source": "orders",
            "key": ["id"],
            "page_size": 20,
            "columns": {"exclude": ["secret"], "rename": {"placed_at": "placedAt"}},
            "target": {
                "table": "shop",
                "partition_key": "USER#{user_id}",
                "sort_key": "ORDER#{id}",
            },
        },
        {
            "source": "audit_log",
            "kind": "view",
            "key": ["day", "seq"],
            "target": {"table": "audit", "partition_key": "{day}#{seq}"},
        },
    ],
}

MYSQL = {
    "version": 1,
    "source": {"database": "shop"},
    "target": {"kind": "mysql", "database": "shop_copy", "url": "mysql://writer@target:3306"},
    "tables": [
        {"source": "users", "key": ["id"], "target": {"table": "users"}},
        {"source": "orders", "key": ["id"], "target": {"on_conflict": "ignore"}},
    ],
}


def edited(doc: dict, edit) -> dict:
    out = copy.deepcopy(doc)
    edit(out)
    return out


def test_valid_dynamodb_contract_parses_into_typed_tables_and_templates():
    c = contract.parse(copy.deepcopy(DYNAMO))

    assert contract.problems(DYNAMO) == []
    assert c.target_kind == "dynamodb"
    assert c.source_database == "shop"
    assert c.null_values == "omit"
    assert c.dynamo_tables["shop"] == contract.DynamoTable("shop", "PK", "SK", "PAY_PER_REQUEST")
    assert c.dynamo_tables["audit"].sort_key is None
    users, orders, audit = c.tables
    assert users.page_size == 500  # from defaults
    assert orders.page_size == 20  # its own
    assert users.partition_key.columns == ("id",)
    assert users.sort_key.parts == (("PROFILE", None),)
    assert users.attributes["GSI1PK"].columns == ("email",)
    assert orders.exclude == ("secret",) and orders.include is None
    assert orders.rename == {"placed_at": "placedAt"}
    assert audit.kind == "view" and audit.key == ("day", "seq")
    assert audit.partition_key.columns == ("day", "seq")
    assert c.table("orders") is orders
    assert json.loads(c.to_json()) == DYNAMO


def test_valid_mysql_contract_parses_with_target_table_defaulting_to_source():
    c = contract.parse(copy.deepcopy(MYSQL))

    assert c.target_kind == "mysql"
    assert c.target_database == "shop_copy"
    assert c.dynamo_tables == {}
    assert [(t.source, t.target_table, t.on_conflict) for t in c.tables] == [
        ("users", "users", "replace"),
        ("orders", "orders", "ignore"),
    ]
    assert c.tables[0].page_size == contract.DEFAULT_PAGE_SIZE
    assert c.bulk_threshold_rows == contract.DEFAULT_BULK_THRESHOLD


def test_asking_for_a_table_not_in_the_contract_names_it():
    c = contract.parse(copy.deepcopy(MYSQL))
    with pytest.raises(KeyError, match="'payments'"):
        c.table("payments")


def test_missing_tables_is_reported_at_the_root():
    assert contract.problems(edited(DYNAMO, lambda d: d.pop("tables"))) == [
        "$: 'tables' is required: list the tables to move, "
        'each {"source": ..., "key": [...], "target": {...}}'
    ]


def test_unknown_top_level_key_is_reported_with_its_name_and_a_fix():
    (problem,) = contract.problems(edited(DYNAMO, lambda d: d.update(tabels=[])))
    assert problem.startswith("$: ")
    assert "'tabels' was unexpected" in problem
    assert "check its spelling" in problem


def test_bad_identifiers_are_reported_at_their_exact_paths():
    def edit(d):
        d["tables"][1]["source"] = "order-lines"
        d["tables"][2]["key"][1] = "seq no"

    assert contract.problems(edited(DYNAMO, edit)) == [
        "$.tables[1].source: 'order-lines' is not a plain MySQL identifier: use letters, digits, _ and $ (at most 64); read it through a view that renames it",
        "$.tables[2].key[1]: 'seq no' is not a plain MySQL identifier: use letters, digits, _ and $ (at most 64); read it through a view that renames it",
    ]


def test_dynamodb_target_table_not_declared_is_reported_at_the_entity():
    def edit(d):
        d["tables"][1]["target"]["table"] = "orders_tbl"

    assert contract.problems(edited(DYNAMO, edit)) == [
        "$.tables[1].target.table: 'orders_tbl' is not declared in $.target.tables: "
        "declare it there, or use one of 'shop', 'audit'"
    ]


def test_dynamodb_entity_without_target_table_is_told_to_name_one():
    def edit(d):
        del d["tables"][0]["target"]["table"]

    assert contract.problems(edited(DYNAMO, edit)) == [
        "$.tables[0].target.table: required: name one of $.target.tables ('shop', 'audit')"
    ]


def test_missing_sort_key_template_is_reported_when_the_table_has_a_sort_key():
    def edit(d):
        del d["tables"][1]["target"]["sort_key"]

    (problem,) = contract.problems(edited(DYNAMO, edit))
    assert problem.startswith("$.tables[1].target.sort_key: required")
    assert "'SK'" in problem


def test_missing_partition_key_template_is_reported():
    def edit(d):
        del d["tables"][2]["target"]["partition_key"]

    (problem,) = contract.problems(edited(DYNAMO, edit))
    assert problem.startswith("$.tables[2].target.partition_key: required")


def test_sort_key_template_for_a_table_without_sort_key_is_reported():
    def edit(d):
        d["tables"][2]["target"]["sort_key"] = "X"

    assert contract.problems(edited(DYNAMO, edit)) == [
        "$.tables[2].target.sort_key: table 'audit' declares no sort key: remove it, "
        "or declare one at $.target.tables.audit.sort_key"
    ]


def test_templates_with_the_same_literal_skeleton_collide_across_entities():
    def edit(d):
        # users: USER#{id} / PROFILE; this one differs only in the column name
        d["tables"][1]["target"]["partition_key"] = "USER#{user_id}"
        d["tables"][1]["target"]["sort_key"] = "PROFILE"

    (problem,) = contract.problems(edited(DYNAMO, edit))
    assert problem.startswith("$.tables[1].target: keys 'USER#{user_id}'/'PROFILE' can collide")
    assert "with $.tables[0] in table 'shop'" in problem


def test_same_skeleton_in_different_dynamodb_tables_does_not_collide():
    def edit(d):
        d["target"]["tables"]["audit"]["sort_key"] = "SK"
        d["tables"][2]["target"] = {
            "table": "audit",
            "partition_key": "USER#{id}",
            "sort_key": "PROFILE",
        }

    assert contract.problems(edited(DYNAMO, edit)) == []


def test_a_source_listed_twice_is_reported_with_the_first_place():
    def edit(d):
        d["tables"][2]["source"] = "users"

    assert contract.problems(edited(DYNAMO, edit)) == [
        "$.tables[2].source: 'users' is listed twice (also at $.tables[0]): "
        "keep one entry per source"
    ]


def test_password_in_source_url_is_refused():
    def edit(d):
        d["source"]["url"] = "mysql://reader:s3cret@db.internal:3306"

    (problem,) = contract.problems(edited(DYNAMO, edit))
    assert problem.startswith("$.source.url: holds a password")
    assert "s3cret" not in problem


def test_password_in_mysql_target_url_is_refused():
    def edit(d):
        d["target"]["url"] = "mysql://writer:pw@target:3306"

    (problem,) = contract.problems(edited(MYSQL, edit))
    assert problem.startswith("$.target.url: holds a password")


def test_mysql_only_option_on_dynamodb_target_is_reported():
    def edit(d):
        d["tables"][0]["target"]["on_conflict"] = "ignore"

    assert contract.problems(edited(DYNAMO, edit)) == [
        "$.tables[0].target.on_conflict: only for MySQL targets: remove it"
    ]


def test_dynamodb_only_options_on_mysql_target_are_reported_each():
    def edit(d):
        d["tables"][1]["target"].update(
            partition_key="ORDER#{id}", sort_key="X", attributes={"GSI1PK": "{id}"}
        )

    assert contract.problems(edited(MYSQL, edit)) == [
        "$.tables[1].target.partition_key: only for DynamoDB targets: remove it",
        "$.tables[1].target.sort_key: only for DynamoDB targets: remove it",
        "$.tables[1].target.attributes: only for DynamoDB targets: remove it",
    ]


def test_mysql_target_option_on_dynamodb_target_is_reported_at_target_not_doubled():
    (problem,) = contract.problems(edited(DYNAMO, lambda d: d["target"].update(database="x")))
    assert problem.startswith("$.target: ")
    assert "'database' was unexpected" in problem


def test_problem_inside_dynamodb_target_tables_has_the_declared_table_path():
    def edit(d):
        del d["target"]["tables"]["audit"]["partition_key"]

    assert contract.problems(edited(DYNAMO, edit)) == [
        "$.target.tables.audit: 'partition_key' is required: "
        'name its partition key attribute, such as "PK"'
    ]


def test_unknown_target_kind_is_reported_at_kind():
    assert contract.problems(edited(MYSQL, lambda d: d["target"].update(kind="sqlite"))) == [
        "$.target.kind: 'sqlite' is not a target kind: use 'dynamodb' or 'mysql'"
    ]


def test_template_with_format_spec_is_reported_at_its_attribute():
    def edit(d):
        d["tables"][0]["target"]["attributes"]["GSI1SK"] = "{created:%Y}"

    (problem,) = contract.problems(edited(DYNAMO, edit))
    assert problem.startswith("$.tables[0].target.attributes.GSI1SK: template '{created:%Y}'")
    assert "format specs are not supported" in problem


def test_parse_raises_contract_error_listing_every_problem():
    def edit(d):
        d["source"]["url"] = "mysql://u:p@h"
        d["tables"][0]["target"]["on_conflict"] = "replace"

    with pytest.raises(ContractError) as err:
        contract.parse(edited(DYNAMO, edit))
    assert [p.split(":")[0] for p in err.value.problems] == [
        "$.source.url",
        "$.tables[0].target.on_conflict",
    ]
    assert "$.source.url" in str(err.value)


def test_load_reads_yaml_and_refuses_broken_json_with_a_root_path(tmp_path):
    import yaml

    good = tmp_path / "contract.yaml"
    good.write_text(yaml.safe_dump(MYSQL))
    assert contract.load(good).target_database == "shop_copy"

    bad = tmp_path / "contract.json"
    bad.write_text('{"version": 1,')
    with pytest.raises(ContractError) as err:
        contract.load(bad)
    assert err.value.problems[0].startswith("$: not valid JSON")


def test_dates_and_types_parse_with_iso8601_the_default():
    def edit(d):
        d["target"]["dates"] = "epoch_millis"
        d["tables"][1]["target"]["types"] = {"placed_at": "epoch_seconds", "id": "string"}

    assert contract.parse(copy.deepcopy(DYNAMO)).dates == "iso8601"
    assert contract.parse(copy.deepcopy(DYNAMO)).tables[1].types == {}
    c = contract.parse(edited(DYNAMO, edit))
    assert c.dates == "epoch_millis"
    assert c.tables[1].types == {"placed_at": "epoch_seconds", "id": "string"}


def test_unknown_dates_encoding_is_reported_at_target_dates():
    (problem,) = contract.problems(edited(DYNAMO, lambda d: d["target"].update(dates="epoch")))
    assert problem.startswith("$.target.dates: 'epoch' is not one of")


def test_unknown_type_in_types_is_reported_at_its_column():
    def edit(d):
        d["tables"][1]["target"]["types"] = {"placed_at": "epoch_nanos", "id": "string"}

    (problem,) = contract.problems(edited(DYNAMO, edit))
    assert problem.startswith("$.tables[1].target.types.placed_at: 'epoch_nanos' is not one of")
    assert "'epoch_millis'" in problem


def test_types_naming_a_column_that_is_not_an_identifier_is_reported():
    def edit(d):
        d["tables"][1]["target"]["types"] = {"placed-at": "string"}

    assert contract.problems(edited(DYNAMO, edit)) == [
        "$.tables[1].target.types: 'placed-at' is not a plain MySQL identifier: use letters, digits, _ and $ (at most 64); read it through a view that renames it"
    ]


def test_types_on_a_mysql_target_is_reported():
    def edit(d):
        d["tables"][1]["target"]["types"] = {"id": "string"}

    assert contract.problems(edited(MYSQL, edit)) == [
        "$.tables[1].target.types: only for DynamoDB targets: remove it"
    ]


def test_dates_on_a_mysql_target_is_reported_at_target():
    (problem,) = contract.problems(
        edited(MYSQL, lambda d: d["target"].update(dates="epoch_seconds"))
    )
    assert problem.startswith("$.target: ")
    assert "'dates' was unexpected" in problem


def test_template_with_an_unknown_filter_is_reported_at_its_attribute():
    def edit(d):
        d["tables"][0]["target"]["attributes"]["GSI1SK"] = "{email|slug}"

    assert contract.problems(edited(DYNAMO, edit)) == [
        "$.tables[0].target.attributes.GSI1SK: template '{email|slug}': unknown filter 'slug' "
        "(known: lower, upper, trim, date)"
    ]
