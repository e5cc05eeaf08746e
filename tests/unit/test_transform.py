"""Transforms: staged pages become MySQL rows or DynamoDB JSON lines, exactly or rejected."""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sluice import contract
from sluice.errors import SluiceError
from sluice.transform import (
    MAX_ITEM_BYTES,
    item_plan,
    selected_columns,
    to_dynamodb_items,
    to_mysql_rows,
)
from sluice.types import Column, arrow_schema


def dynamo_contract(*tables: dict, null_values: str = "omit", sort_key: bool = True):
    decl = {"partition_key": "PK", **({"sort_key": "SK"} if sort_key else {})}
    return contract.parse(
        {
            "version": 1,
            "source": {"database": "shop"},
            "target": {"kind": "dynamodb", "null_values": null_values, "tables": {"shop": decl}},
            "tables": list(tables),
        }
    )


def entity(source, key, pk, sk=None, **extra) -> dict:
    target = {"table": "shop", "partition_key": pk, **({"sort_key": sk} if sk else {})}
    out = {"source": source, "key": key, "target": target}
    for k, v in extra.items():
        (target if k == "attributes" else out)[k] = v
    return out


def page(columns, rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=arrow_schema(columns))


def items_of(lines: pa.Array) -> list[dict]:
    """Each line parsed strictly: one JSON object `{"Item": {...}}` ending in a newline."""
    out = []
    for raw in lines.to_pylist():
        assert raw.endswith(b"\n") and raw.count(b"\n") == 1
        doc = json.loads(raw, parse_float=Decimal)
        assert list(doc) == ["Item"]
        out.append(doc["Item"])
    return out


def transform(c, source: str, tbl: pa.Table):
    plan = item_plan(c, c.table(source), tbl.column_names)
    return to_dynamodb_items(tbl, plan)


@pytest.fixture
def users_cols(column):
    return [
        column("id", "bigint", "bigint unsigned", nullable=False),
        column("org", "varchar", "varchar(20)"),
        column("balance", "decimal", "decimal(20,4)", precision=20, scale=4),
        column("delta", "int", "int"),
        column("photo", "blob", charset=None),
        column("roles", "set", "set('admin','dev','ops')"),
        column("prefs", "json", "json", is_json=True),
        column("created", "datetime", "datetime(6)"),
        column("seen", "timestamp", "timestamp(6)"),
        column("born", "date"),
        column("name", "varchar", "varchar(50)"),
    ]


USER_7 = {
    "id": 7,
    "org": "acme",
    "balance": Decimal("12345678901234.5678"),
    "delta": -42,
    "photo": b"\x00\x01\xff",
    "roles": "admin,ops",
    "prefs": '{"limit": 0.10, "big": 123456789012345678901234567890, "tags": ["a", null, true]}',
    "created": dt.datetime(2024, 1, 2, 3, 4, 5, 6),
    "seen": dt.datetime(2024, 6, 30, 23, 59, 59, 999999, tzinfo=dt.UTC),
    "born": dt.date(1990, 2, 28),
    "name": 'Ann "the" \\ Tab\there',
}
USER_MAX = {
    "id": 18446744073709551615,
    "org": "acme",
    "balance": None,
    "delta": None,
    "photo": None,
    "roles": "",
    "prefs": None,
    "created": None,
    "seen": None,
    "born": None,
    "name": None,
}


def test_items_carry_templated_keys_and_exact_typed_values(users_cols):
    c = dynamo_contract(
        entity("users", ["id"], "USER#{id}", "{org}#{id}", attributes={"GSI1PK": "ORG#{org}"})
    )
    lines, rejected = transform(c, "users", page(users_cols, [USER_7, USER_MAX]))
    assert len(rejected) == 0
    first, second = items_of(lines)

    assert first == {
        "PK": {"S": "USER#7"},
        "SK": {"S": "acme#7"},
        "GSI1PK": {"S": "ORG#acme"},
        "id": {"N": "7"},
        "org": {"S": "acme"},
        "balance": {"N": "12345678901234.5678"},
        "delta": {"N": "-42"},
        "photo": {"B": base64.b64encode(b"\x00\x01\xff").decode()},
        "roles": {"SS": ["admin", "ops"]},
        "prefs": {
            "M": {
                "limit": {"N": "0.10"},
                "big": {"N": "123456789012345678901234567890"},
                "tags": {"L": [{"S": "a"}, {"NULL": True}, {"BOOL": True}]},
            }
        },
        "created": {"S": "2024-01-02T03:04:05.000006"},
        "seen": {"S": "2024-06-30T23:59:59.999999Z"},
        "born": {"S": "1990-02-28"},
        "name": {"S": 'Ann "the" \\ Tab\there'},
    }
    # NULLs and the empty SET are omitted, never written as empty values
    assert second == {
        "PK": {"S": "USER#18446744073709551615"},
        "SK": {"S": "acme#18446744073709551615"},
        "GSI1PK": {"S": "ORG#acme"},
        "id": {"N": "18446744073709551615"},
        "org": {"S": "acme"},
    }


def test_json_numbers_are_never_floats(users_cols):
    c = dynamo_contract(entity("users", ["id"], "USER#{id}", "P"))
    row = dict(USER_7, prefs="[0.1, 1e400, -0.000000000000000000001, 9007199254740993]")
    (item,) = items_of(transform(c, "users", page(users_cols, [row]))[0])
    assert item["prefs"] == {
        "L": [{"N": "0.1"}, {"N": "1E+400"}, {"N": "-1E-21"}, {"N": "9007199254740993"}]
    }


def test_null_values_null_writes_null_attributes_for_null_columns(users_cols):
    c = dynamo_contract(entity("users", ["id"], "USER#{id}", "P"), null_values="null")
    (item,) = items_of(transform(c, "users", page(users_cols, [USER_MAX]))[0])
    assert item["PK"] == {"S": "USER#18446744073709551615"}
    for name in ("balance", "delta", "photo", "prefs", "created", "seen", "born", "name"):
        assert item[name] == {"NULL": True}, name


def test_key_template_without_columns_is_the_same_literal_for_every_row(users_cols):
    c = dynamo_contract(entity("users", ["id"], "USER#{id}", "PROFILE"))
    rows = [dict(USER_7, id=i) for i in (1, 2, 3)]
    items = items_of(transform(c, "users", page(users_cols, rows))[0])
    assert [(i["PK"]["S"], i["SK"]["S"]) for i in items] == [
        ("USER#1", "PROFILE"),
        ("USER#2", "PROFILE"),
        ("USER#3", "PROFILE"),
    ]


def test_row_with_null_key_column_is_rejected_naming_the_column(users_cols):
    c = dynamo_contract(entity("users", ["id"], "USER#{id}", "ORG#{org}"))
    rows = [dict(USER_7, id=1), dict(USER_7, id=2, org=None), dict(USER_7, id=3)]
    lines, rejected = transform(c, "users", page(users_cols, rows))

    assert [i["id"]["N"] for i in items_of(lines)] == ["1", "3"]
    assert rejected.keys == [{"id": 2}]
    (reason,) = rejected.reasons
    assert "column org is NULL" in reason and "SK" in reason


def test_template_giving_an_empty_key_is_rejected(users_cols):
    c = dynamo_contract(entity("users", ["id"], "USER#{id}", "{org}"))
    _, rejected = transform(c, "users", page(users_cols, [dict(USER_7, org="")]))
    assert rejected.keys == [{"id": 7}]
    assert rejected.reasons == ["SK template '{org}' gives an empty key"]


def test_decimal_65_30_over_38_significant_digits_is_rejected_not_rounded(column):
    cols = [
        column("id", "int", nullable=False),
        column("v", "decimal", "decimal(65,30)", precision=65, scale=30),
    ]
    fits = Decimal("1234567890123456789012345678.0123456789")  # 38 digits
    too_many = Decimal("12345678901234567890123456789.0123456789")  # 39 digits
    tiny = Decimal("0.000000000000000000000000000001")
    c = dynamo_contract(entity("nums", ["id"], "NUM#{id}", "V"))
    rows = [{"id": 1, "v": fits}, {"id": 2, "v": too_many}, {"id": 3, "v": tiny}]
    lines, rejected = transform(c, "nums", page(cols, rows))

    items = items_of(lines)
    assert [Decimal(i["v"]["N"]) for i in items] == [fits, tiny]
    assert rejected.keys == [{"id": 2}]
    assert rejected.reasons == [
        "v: more than 38 significant digits, which a DynamoDB number cannot hold"
    ]


def test_nan_and_infinity_are_rejected(column):
    cols = [column("id", "int", nullable=False), column("f", "double")]
    c = dynamo_contract(entity("m", ["id"], "M#{id}", "F"))
    rows = [{"id": 1, "f": 1.5}, {"id": 2, "f": float("nan")}, {"id": 3, "f": float("-inf")}]
    lines, rejected = transform(c, "m", page(cols, rows))
    assert [i["f"] for i in items_of(lines)] == [{"N": "1.5"}]
    assert rejected.keys == [{"id": 2}, {"id": 3}]
    assert set(rejected.reasons) == {"f: NaN or infinity has no DynamoDB number"}


def test_item_over_400_kb_is_rejected_and_smaller_ones_pass(column):
    cols = [column("id", "int", nullable=False), column("body", "longtext")]
    c = dynamo_contract(entity("docs", ["id"], "DOC#{id}", "BODY"))
    rows = [
        {"id": 1, "body": "x" * (MAX_ITEM_BYTES - 1000)},
        {"id": 2, "body": "x" * MAX_ITEM_BYTES},
        {"id": 3, "body": "\U0001f600" * (MAX_ITEM_BYTES // 4)},  # 4 bytes each in UTF-8
    ]
    lines, rejected = transform(c, "docs", page(cols, rows))
    assert [i["id"]["N"] for i in items_of(lines)] == ["1"]
    assert rejected.keys == [{"id": 2}, {"id": 3}]
    assert rejected.reasons == ["item over 400 KB", "item over 400 KB"]


def test_two_rows_with_the_same_target_key_reject_the_second_not_merge(column):
    cols = [
        column("id", "int", nullable=False),
        column("org", "varchar"),
        column("email", "varchar"),
        column("note", "varchar"),
    ]
    c = dynamo_contract(entity("members", ["id"], "ORG#{org}", "EMAIL#{email}"))
    rows = [
        {"id": 1, "org": "a", "email": "x@e", "note": "first"},
        {"id": 2, "org": "a", "email": "y@e", "note": "other sort key"},
        {"id": 3, "org": "a", "email": "x@e", "note": "second"},
        {"id": 4, "org": "b", "email": "x@e", "note": "other partition"},
    ]
    lines, rejected = transform(c, "members", page(cols, rows))
    items = items_of(lines)

    assert [(i["id"]["N"], i["note"]["S"]) for i in items] == [
        ("1", "first"),
        ("2", "other sort key"),
        ("4", "other partition"),
    ]
    assert rejected.keys == [{"id": 3}]
    (reason,) = rejected.reasons
    assert reason.startswith("duplicate target key")


def test_rejected_rows_serialise_as_json_lines_with_key_and_reason(column):
    cols = [column("id", "int", nullable=False), column("o", "varchar")]
    c = dynamo_contract(entity("t", ["id"], "T#{o}", "S"))
    _, rejected = transform(c, "t", page(cols, [{"id": 5, "o": None}]))
    (line,) = rejected.to_jsonl().splitlines()
    doc = json.loads(line)
    assert set(doc) == {"key", "reason"}
    assert "column o is NULL" in doc["reason"]
    assert doc["key"] == {"id": 5}


def test_empty_page_gives_no_lines_and_no_rejects(users_cols):
    c = dynamo_contract(entity("users", ["id"], "USER#{id}", "P"))
    lines, rejected = transform(c, "users", page(users_cols, []))
    assert len(lines) == 0 and len(rejected) == 0


def test_renamed_and_excluded_columns_shape_the_item(users_cols):
    c = dynamo_contract(
        entity(
            "users",
            ["id"],
            "USER#{id}",
            "P",
            columns={"include": ["name", "org"], "rename": {"name": "fullName"}},
        )
    )
    (item,) = items_of(transform(c, "users", page(users_cols, [USER_7]))[0])
    assert set(item) == {"PK", "SK", "id", "org", "fullName"}
    assert item["fullName"] == {"S": USER_7["name"]}


def test_a_column_named_like_a_key_attribute_is_refused(users_cols):
    c = dynamo_contract(
        entity("users", ["id"], "USER#{id}", "P", columns={"rename": {"org": "SK"}})
    )
    with pytest.raises(SluiceError, match=r"\['SK'\].*rename"):
        item_plan(c, c.table("users"), [col.name for col in users_cols])


def varchar(name: str, nullable: bool = True) -> Column:
    return Column.from_information_schema(
        name=name,
        data_type="varchar",
        column_type="varchar(255)",
        nullable=nullable,
        precision=None,
        scale=None,
        datetime_precision=None,
        charset="utf8mb4",
        is_json=False,
    )


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=30)


@given(st.lists(TEXT, min_size=1, max_size=12, unique=True))
@example(["\x00\x01\x08\x0b\x0c\x1f\x7f", '\n\r\t"\\/', "\u2028\u2029\ufeff", "", "\U0001f600"])
def test_any_unicode_text_survives_json_escaping_in_values_and_keys(texts):
    cols = [varchar("id", nullable=False), varchar("name")]
    c = dynamo_contract(entity("t", ["id"], "T#{name}"), sort_key=False)
    rows = [{"id": str(i), "name": t} for i, t in enumerate(texts)]
    lines, rejected = transform(c, "t", page(cols, rows))
    assert len(rejected) == 0
    items = items_of(lines)
    assert [i["name"]["S"] for i in items] == texts
    assert [i["PK"]["S"] for i in items] == ["T#" + t for t in texts]


# ---------------------------------------------------------------- MySQL target


def mysql_spec(**columns):
    doc = {
        "version": 1,
        "source": {"database": "shop"},
        "target": {"kind": "mysql", "database": "copy"},
        "tables": [{"source": "users", "key": ["id"], "columns": columns, "target": {}}],
    }
    return contract.parse(doc).table("users")


def test_mysql_rows_keep_values_and_apply_include_exclude_and_rename(users_cols):
    tbl = page(users_cols, [USER_7, USER_MAX])
    spec = mysql_spec(exclude=["photo", "id"], rename={"name": "full_name", "org": "team"})
    out = to_mysql_rows(tbl, spec)
    assert out.column_names[:2] == ["id", "team"]  # the key is kept even when excluded
    assert "photo" not in out.column_names and "full_name" in out.column_names
    assert out.column("balance").to_pylist() == [USER_7["balance"], None]
    assert out.column("full_name").to_pylist() == [USER_7["name"], None]
    assert out.schema.field("team").metadata == tbl.schema.field("org").metadata


def test_include_always_keeps_the_key_columns():
    spec = mysql_spec(include=["name"])
    assert selected_columns(spec, ["id", "org", "name"]) == ["id", "name"]
