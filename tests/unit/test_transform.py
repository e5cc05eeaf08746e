"""Transforms: staged pages become MySQL rows or DynamoDB JSON lines, exactly or rejected."""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sluice import contract
from sluice.errors import SluiceError
from sluice.source import rows_to_batch
from sluice.transform import (
    MAX_ITEM_BYTES,
    item_plan,
    page_kinds,
    selected_columns,
    to_dynamodb_items,
    to_mysql_rows,
)
from sluice.types import Column, arrow_schema


def dynamo_contract(
    *tables: dict, null_values: str = "omit", sort_key: bool = True, dates: str | None = None
):
    decl = {"partition_key": "PK", **({"sort_key": "SK"} if sort_key else {})}
    target = {"kind": "dynamodb", "null_values": null_values, "tables": {"shop": decl}}
    if dates:
        target["dates"] = dates
    return contract.parse(
        {"version": 1, "source": {"database": "shop"}, "target": target, "tables": list(tables)}
    )


def entity(source, key, pk, sk=None, **extra) -> dict:
    target = {"table": "shop", "partition_key": pk, **({"sort_key": sk} if sk else {})}
    out = {"source": source, "key": key, "target": target}
    for k, v in extra.items():
        (target if k in ("attributes", "types") else out)[k] = v
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
    plan = item_plan(c, c.table(source), tbl.column_names, page_kinds(tbl))
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
    "created": "2024-01-02 03:04:05.000006",
    "seen": "2024-06-30 23:59:59.999999",  # TIMESTAMP, read in a UTC session
    "born": "1990-02-28",
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
    big = "-12345678901234567890123456789012345678"  # 38 digits: the most DynamoDB holds
    row = dict(
        USER_7, prefs=f"[0.1, 1.10, -0.000000000000000000001, 9007199254740993, {big}, 1e125]"
    )
    (item,) = items_of(transform(c, "users", page(users_cols, [row]))[0])
    # Each number keeps the text the document wrote: exact, never through a float.
    assert item["prefs"] == {
        "L": [
            {"N": "0.1"},
            {"N": "1.10"},
            {"N": "-0.000000000000000000001"},
            {"N": "9007199254740993"},
            {"N": big},
            {"N": "1e125"},
        ]
    }


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ("[1e400]", "prefs: 1E+400 is outside DynamoDB's number range (1E-130 .. 9.9E+125)"),
        (
            '{"a": -1e-400}',
            "prefs: -1E-400 is outside DynamoDB's number range (1E-130 .. 9.9E+125)",
        ),
        (
            '{"a": [123456789012345678901234567890123456789]}',
            "prefs: 123456789012345678901234567890123456789 has more than 38 significant digits",
        ),
        (
            "1.00000000000000000000000000000000000001",
            "prefs: 1.00000000000000000000000000000000000001 has more than 38 significant digits",
        ),
    ],
)
def test_json_number_dynamodb_cannot_hold_rejects_the_row_not_rounds(users_cols, doc, reason):
    c = dynamo_contract(entity("users", ["id"], "USER#{id}", "P"))
    rows = [dict(USER_7, id=1), dict(USER_7, id=2, prefs=doc)]
    lines, rejected = transform(c, "users", page(users_cols, rows))
    assert [i["id"]["N"] for i in items_of(lines)] == ["1"]
    assert rejected.keys == [{"id": 2}]
    assert rejected.reasons == [reason]


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
        item_plan(
            c,
            c.table("users"),
            [col.name for col in users_cols],
            {col.name: col.kind for col in users_cols},
        )


def plain_column(name: str, data_type: str, column_type: str | None = None) -> Column:
    """A Column outside a fixture (hypothesis tests cannot take function-scoped fixtures)."""
    return Column.from_information_schema(
        name=name,
        data_type=data_type,
        column_type=column_type or data_type,
        nullable=name != "id",
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
    cols = [
        plain_column("id", "varchar", "varchar(255)"),
        plain_column("name", "varchar", "varchar(255)"),
    ]
    c = dynamo_contract(entity("t", ["id"], "T#{name}"), sort_key=False)
    rows = [{"id": str(i), "name": t} for i, t in enumerate(texts)]
    lines, rejected = transform(c, "t", page(cols, rows))
    assert len(rejected) == 0
    items = items_of(lines)
    assert [i["name"]["S"] for i in items] == texts
    assert [i["PK"]["S"] for i in items] == ["T#" + t for t in texts]


# ---------------------------------------------------------------- dates


@pytest.fixture
def dated_cols(column):
    return [
        column("id", "int", nullable=False),
        column("day", "date"),
        column("at", "datetime", "datetime(6)"),
        column("at0", "datetime", "datetime"),
        column("ts", "timestamp", "timestamp(6)"),
    ]


DATED = {
    "id": 1,
    "day": "2024-02-29",
    "at": "2024-02-29 12:34:56.500000",
    "at0": "1969-07-20 20:17:40",
    "ts": "2024-02-29 12:34:56.500000",
}
ZERO_DATED = {
    "id": 2,
    "day": "0000-00-00",
    "at": "0000-00-00 00:00:00.000000",
    "at0": "0000-00-00 00:00:00",
    "ts": "0000-00-00 00:00:00.000000",
}


def test_dates_are_iso8601_text_by_default_with_z_on_timestamps(dated_cols):
    c = dynamo_contract(entity("ev", ["id"], "EV#{id}", "E"))
    lines, rejected = transform(c, "ev", page(dated_cols, [DATED, ZERO_DATED]))
    assert len(rejected) == 0
    items = items_of(lines)
    assert [{k: i[k] for k in ("day", "at", "at0", "ts")} for i in items] == [
        {
            "day": {"S": "2024-02-29"},
            "at": {"S": "2024-02-29T12:34:56.500000"},
            "at0": {"S": "1969-07-20T20:17:40"},
            "ts": {"S": "2024-02-29T12:34:56.500000Z"},
        },
        # zero dates keep the server's text, ISO-shaped, never a made-up instant
        {
            "day": {"S": "0000-00-00"},
            "at": {"S": "0000-00-00T00:00:00.000000"},
            "at0": {"S": "0000-00-00T00:00:00"},
            "ts": {"S": "0000-00-00T00:00:00.000000Z"},
        },
    ]


@pytest.mark.parametrize(
    ("dates", "data_type", "column_type", "text", "number"),
    [
        (
            "epoch_seconds",
            "datetime",
            "datetime(6)",
            "2024-02-29 12:34:56.500000",
            "1709210096.500000",
        ),
        ("epoch_seconds", "datetime", "datetime(6)", "1969-12-31 23:59:59.500000", "-0.500000"),
        ("epoch_seconds", "datetime", "datetime(6)", "1969-12-31 23:59:59.999999", "-0.000001"),
        ("epoch_seconds", "datetime", "datetime(6)", "1970-01-01 00:00:00.000001", "0.000001"),
        ("epoch_seconds", "datetime", "datetime(1)", "1969-07-20 20:17:40.5", "-14182939.500000"),
        ("epoch_seconds", "datetime", "datetime", "1000-01-01 00:00:00", "-30610224000.000000"),
        (
            "epoch_seconds",
            "timestamp",
            "timestamp(6)",
            "2038-01-19 03:14:07.999999",
            "2147483647.999999",
        ),
        ("epoch_seconds", "date", "date", "2024-02-29", "1709164800.000000"),
        ("epoch_seconds", "date", "date", "1969-12-31", "-86400.000000"),
        (
            "epoch_millis",
            "datetime",
            "datetime(6)",
            "2024-02-29 12:34:56.500000",
            "1709210096500.000",
        ),
        ("epoch_millis", "datetime", "datetime(6)", "1969-12-31 23:59:59.500000", "-500.000"),
        ("epoch_millis", "datetime", "datetime(6)", "1970-01-01 00:00:00.000001", "0.001"),
        ("epoch_millis", "datetime", "datetime(3)", "2024-02-29 12:34:56.123", "1709210096123.000"),
        ("epoch_millis", "timestamp", "timestamp", "1970-01-01 00:00:01", "1000.000"),
        ("epoch_millis", "date", "date", "9999-12-31", "253402214400000.000"),
    ],
)
def test_epoch_dates_are_exact_numbers_with_their_fraction(
    column, dates, data_type, column_type, text, number
):
    cols = [column("id", "int", nullable=False), column("v", data_type, column_type)]
    c = dynamo_contract(entity("ev", ["id"], "EV#{id}", "E"), dates=dates)
    lines, rejected = transform(c, "ev", page(cols, [{"id": 1, "v": text}]))
    assert len(rejected) == 0
    (item,) = items_of(lines)
    assert item["v"] == {"N": number}


EPOCH = dt.datetime(1970, 1, 1)
EV_COLS = [plain_column("id", "int"), plain_column("at", "datetime", "datetime(6)")]


@given(st.datetimes(min_value=dt.datetime(1000, 1, 1)))
def test_any_datetime_becomes_the_exact_epoch_seconds_and_millis(when):
    text = when.isoformat(sep=" ", timespec="microseconds")
    since = when - EPOCH
    seconds = Decimal(since.days * 86400 + since.seconds) + Decimal(since.microseconds) / 10**6
    for dates, want in (("epoch_seconds", seconds), ("epoch_millis", seconds * 1000)):
        c = dynamo_contract(entity("ev", ["id"], "EV#{id}", "E"), dates=dates)
        (item,) = items_of(transform(c, "ev", page(EV_COLS, [{"id": 1, "at": text}]))[0])
        assert Decimal(item["at"]["N"]) == want


@pytest.mark.parametrize("dates", ["epoch_seconds", "epoch_millis"])
def test_zero_dates_are_rejected_under_epoch_encodings_naming_the_column(dated_cols, dates):
    c = dynamo_contract(entity("ev", ["id"], "EV#{id}", "E"), dates=dates)
    rows = [
        DATED,
        ZERO_DATED,
        dict(DATED, id=3, day="2024-02-00"),  # zero day
        dict(DATED, id=4, ts="0000-00-00 00:00:00.000000"),
    ]
    lines, rejected = transform(c, "ev", page(dated_cols, rows))
    assert [i["id"]["N"] for i in items_of(lines)] == ["1"]
    assert rejected.keys == [{"id": 2}, {"id": 3}, {"id": 4}]
    assert rejected.reasons == [
        f"{col}: not a calendar date (a zero date?), so no {dates} number"
        for col in ("day", "day", "ts")
    ]


def test_types_override_the_contracts_date_encoding_per_column(dated_cols):
    c = dynamo_contract(
        entity(
            "ev",
            ["id"],
            "EV#{id}",
            "E",
            types={"day": "iso8601", "at": "epoch_seconds", "ts": "string"},
        ),
        dates="epoch_millis",
    )
    zero = dict(DATED, id=2, day="0000-00-00", at=None, ts="0000-00-00 00:00:00.000000")
    lines, rejected = transform(c, "ev", page(dated_cols, [DATED, zero]))
    assert len(rejected) == 0
    first, second = items_of(lines)
    assert {k: first[k] for k in ("day", "at", "at0", "ts")} == {
        "day": {"S": "2024-02-29"},
        "at": {"N": "1709210096.500000"},
        "at0": {"N": "-14182940000.000"},  # the contract's epoch_millis
        "ts": {"S": "2024-02-29T12:34:56.500000Z"},
    }
    # zero dates pass where the column is written as text
    assert (second["day"], second["ts"]) == (
        {"S": "0000-00-00"},
        {"S": "0000-00-00T00:00:00.000000Z"},
    )
    assert "at" not in second


# ---------------------------------------------------------------- template filters


@pytest.fixture
def member_cols(column):
    return [
        column("id", "int", nullable=False),
        column("email", "varchar", "varchar(100)"),
        column("name", "varchar", "varchar(100)"),
    ]


def test_lower_upper_and_trim_filters_shape_keys_but_not_values(member_cols):
    c = dynamo_contract(
        entity(
            "members",
            ["id"],
            "EMAIL#{email|trim|lower}",
            "{name|upper}",
            attributes={"GSI1PK": "{name|trim}#{id}"},
        )
    )
    rows = [{"id": 1, "email": " \tAnn@Example.COM\n", "name": "  Zoë Ünal "}]
    (item,) = items_of(transform(c, "members", page(member_cols, rows))[0])
    assert (item["PK"], item["SK"], item["GSI1PK"]) == (
        {"S": "EMAIL#ann@example.com"},
        {"S": "  ZOË ÜNAL "},
        {"S": "Zoë Ünal#1"},
    )
    assert item["email"] == {"S": " \tAnn@Example.COM\n"}
    assert item["name"] == {"S": "  Zoë Ünal "}


def test_keys_that_a_filter_makes_equal_reject_the_later_row(member_cols):
    c = dynamo_contract(entity("members", ["id"], "EMAIL#{email|lower}", "M"))
    rows = [
        {"id": 1, "email": "Ann@x.com", "name": "a"},
        {"id": 2, "email": "ann@X.COM", "name": "b"},
    ]
    lines, rejected = transform(c, "members", page(member_cols, rows))
    assert [i["name"]["S"] for i in items_of(lines)] == ["a"]
    assert rejected.keys == [{"id": 2}]
    assert rejected.reasons[0].startswith("duplicate target key")


def test_date_filter_formats_dates_datetimes_and_timestamps(dated_cols):
    c = dynamo_contract(
        entity(
            "ev",
            ["id"],
            "MONTH#{at|date:%Y-%m}",
            "{day|date:%d/%m/%Y}#{ts|date:%Y%m%dT%H:%M:%S}",
        )
    )
    row = dict(DATED, at="2024-02-29 23:59:59.999999", day="1969-12-31")
    (item,) = items_of(transform(c, "ev", page(dated_cols, [row]))[0])
    assert (item["PK"], item["SK"]) == (
        {"S": "MONTH#2024-02"},
        {"S": "31/12/1969#20240229T12:34:56"},
    )


@pytest.mark.parametrize(
    "zero", [{"at": "0000-00-00 00:00:00.000000"}, {"at": "2024-00-10 00:00:00"}]
)
def test_date_filter_on_a_zero_date_rejects_the_row(dated_cols, zero):
    c = dynamo_contract(entity("ev", ["id"], "MONTH#{at|date:%Y-%m}", "E"))
    lines, rejected = transform(c, "ev", page(dated_cols, [dict(DATED, id=2, **zero), DATED]))
    assert [i["id"]["N"] for i in items_of(lines)] == ["1"]
    assert rejected.keys == [{"id": 2}]
    assert rejected.reasons == [
        "PK template 'MONTH#{at|date:%Y-%m}': not a date that date:%Y-%m can format"
    ]


def test_multi_column_template_joins_each_columns_exact_text(column):
    cols = [
        column("customer_id", "bigint", "bigint unsigned", nullable=False),
        column("created_at", "datetime", "datetime(6)", nullable=False),
        column("amount", "decimal", "decimal(10,2)", precision=10, scale=2),
        column("seen", "timestamp", "timestamp(3)"),
    ]
    c = dynamo_contract(
        entity(
            "orders",
            ["customer_id", "created_at"],
            "CUST#{customer_id}",
            "{customer_id}#{created_at}",
            attributes={"GSI1SK": "{amount}@{seen}"},
        )
    )
    rows = [
        {
            "customer_id": 18446744073709551615,
            "created_at": "2024-02-29 12:34:56.500000",
            "amount": Decimal("12.50"),
            "seen": "2024-03-01 00:00:00.001",
        },
        # a zero date is text like any other in a template without a date filter
        {
            "customer_id": 5,
            "created_at": "0000-00-00 00:00:00.000000",
            "amount": Decimal("-0.05"),
            "seen": "1970-01-01 00:00:01.000",
        },
    ]
    lines, rejected = transform(c, "orders", page(cols, rows))
    assert len(rejected) == 0
    assert [(i["SK"]["S"], i["GSI1SK"]["S"]) for i in items_of(lines)] == [
        ("18446744073709551615#2024-02-29T12:34:56.500000", "12.50@2024-03-01T00:00:00.001Z"),
        ("5#0000-00-00T00:00:00.000000", "-0.05@1970-01-01T00:00:01.000Z"),
    ]


# ---------------------------------------------------------------- types overrides


@pytest.fixture
def coded_cols(column):
    return [column("id", "int", nullable=False), column("code", "varchar", "varchar(60)")]


NUMERIC_TEXTS = [
    "12.50",
    "-0.001",
    "00042",
    ".5",
    "7.",
    "1E+5",
    "-2.5e-3",
    "12345678901234567890123456789012345678",  # 38 digits
    "0.00000000000000000000000000000000000000000000000000012345678901234567890123456789012345678",
]


def test_number_type_on_a_text_column_writes_its_digits_exactly(coded_cols):
    c = dynamo_contract(entity("codes", ["id"], "C#{id}", "C", types={"code": "number"}))
    rows = [{"id": i, "code": t} for i, t in enumerate([*NUMERIC_TEXTS, None])]
    lines, rejected = transform(c, "codes", page(coded_cols, rows))
    assert len(rejected) == 0
    items = items_of(lines)
    assert [i.get("code") for i in items] == [{"N": t} for t in NUMERIC_TEXTS] + [None]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc", "code: not a number, but typed 'number' in the contract"),
        ("", "code: not a number, but typed 'number' in the contract"),
        (" 5", "code: not a number, but typed 'number' in the contract"),
        ("+5", "code: not a number, but typed 'number' in the contract"),
        ("1,5", "code: not a number, but typed 'number' in the contract"),
        ("0x1F", "code: not a number, but typed 'number' in the contract"),
        ("NaN", "code: not a number, but typed 'number' in the contract"),
        ("Infinity", "code: not a number, but typed 'number' in the contract"),
        (
            "123456789012345678901234567890123456789",
            "code: more than 38 significant digits, which a DynamoDB number cannot hold",
        ),
    ],
)
def test_a_text_column_typed_number_rejects_what_is_not_a_dynamodb_number(coded_cols, text, reason):
    c = dynamo_contract(entity("codes", ["id"], "C#{id}", "C", types={"code": "number"}))
    rows = [{"id": 1, "code": "1"}, {"id": 2, "code": text}]
    lines, rejected = transform(c, "codes", page(coded_cols, rows))
    assert [i["code"] for i in items_of(lines)] == [{"N": "1"}]
    assert rejected.keys == [{"id": 2}]
    assert rejected.reasons == [reason]


@pytest.mark.parametrize("text", ["1e400", "-1E+126", "1e-131"])
def test_a_text_column_typed_number_rejects_numbers_outside_dynamodb_range(coded_cols, text):
    c = dynamo_contract(entity("codes", ["id"], "C#{id}", "C", types={"code": "number"}))
    _, rejected = transform(c, "codes", page(coded_cols, [{"id": 2, "code": text}]))
    assert rejected.keys == [{"id": 2}]


def test_string_type_on_number_columns_writes_their_exact_text(users_cols):
    c = dynamo_contract(
        entity(
            "users",
            ["id"],
            "USER#{id}",
            "P",
            types={"id": "string", "balance": "string", "delta": "string"},
        )
    )
    rows = [USER_7, dict(USER_MAX, balance=Decimal("-0.0001"), delta=-2147483648)]
    first, second = items_of(transform(c, "users", page(users_cols, rows))[0])
    assert (first["id"], first["balance"], first["delta"]) == (
        {"S": "7"},
        {"S": "12345678901234.5678"},
        {"S": "-42"},
    )
    assert (second["id"], second["balance"], second["delta"]) == (
        {"S": "18446744073709551615"},
        {"S": "-0.0001"},
        {"S": "-2147483648"},
    )


def test_json_type_on_a_text_column_writes_a_map_or_rejects_text_that_is_not_json(coded_cols):
    c = dynamo_contract(entity("codes", ["id"], "C#{id}", "C", types={"code": "json"}))
    rows = [
        {"id": 1, "code": '{"price": 1.50, "n": 12345678901234567890}'},
        {"id": 2, "code": "{x"},
    ]
    lines, rejected = transform(c, "codes", page(coded_cols, rows))
    (item,) = items_of(lines)
    assert item["code"] == {"M": {"price": {"N": "1.50"}, "n": {"N": "12345678901234567890"}}}
    assert rejected.keys == [{"id": 2}]
    assert rejected.reasons[0].startswith("code: ")


@pytest.mark.parametrize("text", ["[NaN]", '{"a": Infinity}', "-Infinity"])
def test_json_nan_and_infinity_reject_the_row(coded_cols, text):
    c = dynamo_contract(entity("codes", ["id"], "C#{id}", "C", types={"code": "json"}))
    _, rejected = transform(c, "codes", page(coded_cols, [{"id": 2, "code": text}]))
    assert rejected.keys == [{"id": 2}]


@pytest.mark.parametrize(
    "number", ["9.9999999999999999999999999999999999999E+125", "1E-130", "-1E-130"]
)
def test_json_numbers_at_dynamodb_range_limits_are_kept_exactly(users_cols, number):
    c = dynamo_contract(entity("users", ["id"], "USER#{id}", "P"))
    lines, rejected = transform(c, "users", page(users_cols, [dict(USER_7, prefs=f"[{number}]")]))
    assert rejected.reasons == []
    (item,) = items_of(lines)
    assert item["prefs"] == {"L": [{"N": number}]}


# ---------------------------------------------------------------- JSON columns, many rows


def dynamodb_json(text: str):
    """The README's mapping of one JSON text, read independently: numbers as written."""

    def wrap(v):
        if isinstance(v, dict):  # already wrapped by the hooks below
            return v
        if isinstance(v, str):
            return {"S": v}
        if isinstance(v, list):
            return {"L": [wrap(x) for x in v]}
        return {"NULL": True} if v is None else {"BOOL": v}

    return wrap(
        json.loads(
            text,
            parse_int=lambda s: {"N": s},
            parse_float=lambda s: {"N": s},
            object_pairs_hook=lambda pairs: {"M": {k: wrap(v) for k, v in pairs}},
        )
    )


JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**37), 10**37),
    st.floats(-1e100, 1e100).filter(lambda f: f == 0 or abs(f) > 1e-100),
    TEXT,
)
JSON_DOC = st.recursive(
    JSON_LEAF,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(TEXT, kids, max_size=4),
    max_leaves=10,
)


@given(
    st.lists(JSON_DOC, min_size=1, max_size=4),
    st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.booleans()), min_size=1, max_size=40),
)
@example(
    [{"sku": "A", "qty": 2, "price": 0.31}, {"a": [1, {"b": None}], "c": True}],
    [(0, False, False), (0, True, False), (1, False, True), (0, False, False), (1, True, True)],
)
def test_json_columns_of_many_rows_map_each_value_as_documented(docs, rows):
    """Rows that share a document's structure go through it together; every value, whatever
    its spacing and escapes, maps as the same value alone would."""
    cols = [plain_column("id", "int"), plain_column("js", "json")]
    c = dynamo_contract(entity("t", ["id"], "T#{id}"), sort_key=False)
    texts = [
        json.dumps(
            docs[i % len(docs)],
            ensure_ascii=ascii_escapes,
            separators=(", ", ": ") if spaced else (",", ":"),
        )
        for i, ascii_escapes, spaced in rows
    ]
    lines, rejected = transform(
        c, "t", page(cols, [{"id": i, "js": t} for i, t in enumerate(texts)])
    )
    assert len(rejected) == 0
    assert [item["js"] for item in items_of(lines)] == [dynamodb_json(t) for t in texts]


def test_json_values_outside_the_shared_structure_arrive_or_are_rejected_alone(coded_cols):
    c = dynamo_contract(entity("codes", ["id"], "C#{id}", "C", types={"code": "json"}))
    shared = '{"sku": "S-%d", "qty": %d}'
    others = {
        10: '{"sku": "a", "sku": "b"}',  # a key twice: the last value wins, as json.loads does
        11: '{"sku": "q\\"uote", "qty": 1}',  # escapes in the text
        12: '{"sku": "S", "qty": 123456789012345678901234567890123456789}',  # 39 digits
        13: '{"sku": "S", "qty": 1.5e3}',  # an exponent: kept as written
        14: '{"qty": 1, "sku": "S"}',  # the same keys in another order
        15: "[]",
    }
    rows = [{"id": i, "code": others.get(i, shared % (i, i))} for i in range(20)]
    lines, rejected = transform(c, "codes", page(coded_cols, rows))
    items = {int(i["PK"]["S"][2:]): i["code"] for i in items_of(lines)}
    assert rejected.keys == [{"id": 12}]
    assert rejected.reasons == [
        "code: 123456789012345678901234567890123456789 has more than 38 significant digits"
    ]
    assert items[0] == {"M": {"sku": {"S": "S-0"}, "qty": {"N": "0"}}}
    assert items[10] == {"M": {"sku": {"S": "b"}}}
    assert items[11] == {"M": {"sku": {"S": 'q"uote'}, "qty": {"N": "1"}}}
    assert items[13] == {"M": {"sku": {"S": "S"}, "qty": {"N": "1.5e3"}}}
    assert items[14] == {"M": {"qty": {"N": "1"}, "sku": {"S": "S"}}}
    assert items[15] == {"L": []}
    assert len(items) == 19
    # in the wire text, map keys keep their order and a repeated key is written once
    raw = {int(json.loads(r)["Item"]["PK"]["S"][2:]): r for r in lines.to_pylist()}
    assert b'"code":{"M":{"qty":{"N":"1"},"sku":{"S":"S"}}}' in raw[14]
    assert b'"code":{"M":{"sku":{"S":"b"}}}' in raw[10]


def test_a_few_strings_needing_escapes_among_many_plain_ones_are_escaped_exactly(coded_cols):
    c = dynamo_contract(entity("codes", ["id"], "C#{code}", "C"))
    odd = {7: 'say "hi"', 50: "tab\there", 93: "ctl\x01\x1f", 120: "back\\slash"}
    rows = [{"id": i, "code": odd.get(i, f"plain {i}")} for i in range(200)]
    lines, rejected = transform(c, "codes", page(coded_cols, rows))
    assert len(rejected) == 0
    items = items_of(lines)
    assert [i["code"]["S"] for i in items] == [r["code"] for r in rows]
    assert [i["PK"]["S"] for i in items] == ["C#" + r["code"] for r in rows]
    assert b'"code":{"S":"ctl\\u0001\\u001f"}' in lines[93].as_py()


def test_a_repeated_integer_in_one_key_part_is_no_duplicate_when_the_other_differs(column):
    cols = [column("id", "int", nullable=False), column("cust", "int")]
    c = dynamo_contract(entity("orders", ["id"], "C#{cust}", "O#{id}"))
    rows = [{"id": i, "cust": i % 3} for i in range(9)]
    lines, rejected = transform(c, "orders", page(cols, rows))
    assert len(rejected) == 0 and len(lines) == 9
    c = dynamo_contract(entity("orders", ["id"], "C#{cust}", "ORDER"))
    lines, rejected = transform(c, "orders", page(cols, rows))
    assert [i["cust"]["N"] for i in items_of(lines)] == ["0", "1", "2"]
    assert rejected.keys == [{"id": i} for i in range(3, 9)]
    assert all(r.startswith("duplicate target key") for r in rejected.reasons)


# ---------------------------------------------------------------- floats


def float32(x: float) -> float:
    """x narrowed to single precision, as a FLOAT column stores it."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def test_double_outside_dynamodb_number_range_is_rejected_not_rounded(column):
    cols = [column("id", "int", nullable=False), column("g", "double")]
    c = dynamo_contract(entity("m", ["id"], "M#{id}", "G"))
    kept = [9.99e125, -9.99e125, 1e-130, -1.5e-130, 0.0, 1.7976931348623157e308 / 1e183]
    out = [1e300, -1e200, 1.7976931348623157e308, 1e-131, -5e-324]
    rows = [{"id": i, "g": v} for i, v in enumerate(kept + out)]
    lines, rejected = transform(c, "m", page(cols, rows))
    assert [float(Decimal(i["g"]["N"])) for i in items_of(lines)] == kept
    assert rejected.keys == [{"id": i} for i in range(len(kept), len(kept) + len(out))]
    assert set(rejected.reasons) == {"g: outside DynamoDB's number range (1E-130 .. 9.9E+125)"}


def test_double_whose_text_is_above_dynamodb_maximum_is_rejected(column):
    cols = [column("id", "int", nullable=False), column("g", "double")]
    c = dynamo_contract(entity("m", ["id"], "M#{id}", "G"))
    lines, rejected = transform(c, "m", page(cols, [{"id": 1, "g": 1e126}]))
    written = [Decimal(i["g"]["N"]) for i in items_of(lines)]
    assert all(abs(n) <= Decimal("9.9999999999999999999999999999999999999E+125") for n in written)


@pytest.mark.parametrize(
    ("double_text", "number"),
    [
        ("1.2345677614212036", "1.2345678"),  # CAST(CAST(1.2345678 AS FLOAT) AS DOUBLE)
        ("0.10000000149011612", "0.1"),
        ("16777216", "16777216"),
        ("-3.4028234663852886e38", "-3.4028235e+38"),
        ("1.401298464324817e-45", "1e-45"),
    ],
)
def test_float_column_is_written_as_the_shortest_text_of_its_single_value(
    column, double_text, number
):
    cols = [column("id", "int", nullable=False), column("f", "float")]
    staged = pa.Table.from_batches(
        [rows_to_batch([("1", double_text)], cols, arrow_schema(cols), "m")]
    )
    c = dynamo_contract(entity("m", ["id"], "M#{id}", "F"))
    (item,) = items_of(transform(c, "m", staged)[0])
    assert item["f"] == {"N": number}
    assert float32(float(number)) == float32(float(double_text))


@given(
    st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=20)
)
def test_any_single_float_is_written_with_at_most_9_digits_that_read_back_the_same(values):
    cols = [plain_column("id", "int"), plain_column("f", "float")]
    c = dynamo_contract(entity("m", ["id"], "M#{id}", "F"))
    rows = [{"id": i, "f": v} for i, v in enumerate(values)]
    lines, rejected = transform(c, "m", page(cols, rows))
    assert len(rejected) == 0
    numbers = [i["f"]["N"] for i in items_of(lines)]
    assert [float32(float(n)) for n in numbers] == values
    assert all(len(Decimal(n).normalize().as_tuple().digits) <= 9 for n in numbers)


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
