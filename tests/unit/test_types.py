"""MySQL column types map to exact Arrow types; contracts are checked against the schema."""

from __future__ import annotations

import copy

import pyarrow as pa
import pytest
from sluice import contract
from sluice.errors import ContractError, SluiceError
from sluice.source import SourceTable
from sluice.types import arrow_schema, kind_of, mysql_type_of
from sluice.validate import check_against_source


@pytest.mark.parametrize(
    ("data_type", "column_type", "precision", "scale", "charset", "arrow", "kind"),
    [
        ("tinyint", "tinyint(1)", None, None, None, pa.int8(), "int"),
        ("int", "int(10) unsigned", None, None, None, pa.uint32(), "int"),
        ("bigint", "bigint unsigned", None, None, None, pa.uint64(), "int"),
        ("bigint", "bigint", None, None, None, pa.int64(), "int"),
        ("decimal", "decimal(38,10)", 38, 10, None, pa.decimal128(38, 10), "decimal"),
        ("decimal", "decimal(39,0)", 39, 0, None, pa.decimal256(39, 0), "decimal"),
        ("decimal", "decimal(65,30)", 65, 30, None, pa.decimal256(65, 30), "decimal"),
        ("float", "float", None, None, None, pa.float32(), "float"),
        ("double", "double", None, None, None, pa.float64(), "float"),
        ("bit", "bit(64)", None, None, None, pa.uint64(), "bit"),
        # dates and times as the server's own text: exact at any precision, zero dates too
        ("date", "date", None, None, None, pa.string(), "date"),
        ("datetime", "datetime(6)", None, None, None, pa.string(), "datetime"),
        ("datetime", "datetime", None, None, None, pa.string(), "datetime"),
        ("timestamp", "timestamp(3)", None, None, None, pa.string(), "timestamp"),
        ("time", "time(6)", None, None, None, pa.string(), "time"),
        ("year", "year(4)", None, None, None, pa.uint16(), "year"),
        ("varchar", "varchar(255)", None, None, "utf8mb4", pa.string(), "text"),
        ("varchar", "varbinary(16)", None, None, "binary", pa.binary(), "binary"),
        ("set", "set('a','b')", None, None, "utf8mb4", pa.string(), "set"),
        ("enum", "enum('x','y')", None, None, "utf8mb4", pa.string(), "enum"),
        ("json", "json", None, None, None, pa.string(), "json"),
        ("longblob", "longblob", None, None, None, pa.binary(), "binary"),
        ("point", "point", None, None, None, pa.binary(), "spatial"),
    ],
)
def test_mysql_type_maps_to_an_arrow_type_that_holds_it_exactly(
    column, data_type, column_type, precision, scale, charset, arrow, kind
):
    c = column("c", data_type, column_type, precision=precision, scale=scale, charset=charset)
    assert (c.arrow, c.kind) == (arrow, kind)
    field = arrow_schema([c]).field(0)
    assert field.type == arrow
    assert kind_of(field) == kind
    assert mysql_type_of(field) == column_type


def test_mariadb_json_longtext_is_staged_as_json(column):
    c = column("doc", "longtext", "longtext", is_json=True)
    assert c.kind == "json"


def test_not_null_column_gives_a_non_nullable_field(column):
    assert arrow_schema([column("id", "int", nullable=False)]).field(0).nullable is False


def test_field_without_metadata_counts_as_text():
    assert kind_of(pa.field("x", pa.string())) == "text"


@pytest.mark.parametrize(
    ("data_type", "column_type", "expr"),
    [
        # FLOAT prints with 6 significant digits over the text protocol; DOUBLE prints whole
        ("float", "float", "CAST(`c` AS DOUBLE)"),
        ("float", "float unsigned", "CAST(`c` AS DOUBLE)"),
        ("double", "double", "`c`"),
        ("bit", "bit(8)", "CAST(`c` AS UNSIGNED)"),
        ("datetime", "datetime(6)", "`c`"),
        ("timestamp", "timestamp", "`c`"),
    ],
)
def test_columns_are_selected_so_the_server_prints_every_digit(
    column, data_type, column_type, expr
):
    assert column("c", data_type, column_type).select_expr() == expr


@pytest.mark.parametrize(
    ("data_type", "charset", "expr"),
    [
        # already UTF-8 as stored: the bytes go as they are, as bytes (see line_expr)
        ("varchar", "utf8mb4", "CAST(`c` AS BINARY)"),
        ("enum", "utf8mb3", "CAST(`c` AS BINARY)"),
        ("text", "utf8", "CAST(`c` AS BINARY)"),
        # any other character set is converted as the wire would convert it
        ("varchar", "latin1", "CAST(CONVERT(`c` USING utf8mb4) AS BINARY)"),
        ("varchar", "ucs2", "CAST(CONVERT(`c` USING utf8mb4) AS BINARY)"),
        ("longtext", None, "CAST(CONVERT(`c` USING utf8mb4) AS BINARY)"),  # unknown: convert
        ("varbinary", "binary", "`c`"),
        ("int", None, "`c`"),
    ],
)
def test_only_character_columns_not_stored_as_utf8_are_converted_in_a_line(
    column, data_type, charset, expr
):
    assert column("c", data_type, data_type, charset=charset).line_expr() == expr


def test_unsupported_type_names_the_column_and_a_way_out(column):
    with pytest.raises(SluiceError, match=r"column 'v' has type 'vector\(3\)'.*exclude the column"):
        column("v", "vector", "vector(3)")


# ---------------------------------------------------------------- contract vs live schema

DOC = {
    "version": 1,
    "source": {"database": "shop"},
    "target": {"kind": "dynamodb", "tables": {"shop": {"partition_key": "PK", "sort_key": "SK"}}},
    "tables": [
        {
            "source": "users",
            "key": ["id"],
            "columns": {"exclude": ["secret"]},
            "target": {
                "table": "shop",
                "partition_key": "USER#{id}",
                "sort_key": "PROFILE",
                "attributes": {"GSI1PK": "EMAIL#{email}"},
            },
        },
    ],
}


@pytest.fixture
def users(column) -> SourceTable:
    cols = (
        column("id", "int", nullable=False),
        column("email", "varchar"),
        column("secret", "text"),
    )
    return SourceTable("users", "table", cols, ("id",), 3)


def test_contract_matching_the_source_passes(users):
    check_against_source(contract.parse(copy.deepcopy(DOC)), {"users": users})


def test_every_unknown_table_column_and_key_is_reported_with_its_path(users):
    doc = copy.deepcopy(DOC)
    t = doc["tables"][0]
    t["key"] = ["uid"]
    t["columns"]["exclude"] = ["secrets"]
    t["target"]["attributes"]["GSI1PK"] = "EMAIL#{mail}"
    with pytest.raises(ContractError) as err:
        check_against_source(contract.parse(doc), {"users": users})
    paths = [p.split(":")[0] for p in err.value.problems]
    assert paths == [
        "$.tables[0].key[0]",
        "$.tables[0].key",
        "$.tables[0].columns.exclude[0]",
        "$.tables[0].target.attributes.GSI1PK",
    ]
    assert "'mail'" in err.value.problems[-1]


def test_a_missing_source_table_suggests_the_same_name_in_other_case(users):
    with pytest.raises(ContractError) as err:
        check_against_source(contract.parse(copy.deepcopy(DOC)), {"Users": users})
    assert err.value.problems == [
        "$.tables[0].source: no table or view 'users' in shop (did you mean 'Users'?)"
    ]


@pytest.fixture
def typed_users(column) -> SourceTable:
    cols = (
        column("id", "int", nullable=False),
        column("email", "varchar"),
        column("secret", "text"),
        column("created", "datetime", "datetime(6)"),
        column("born", "date"),
        column("photo", "blob", charset=None),
        column("roles", "set", "set('a','b')"),
    )
    return SourceTable("users", "table", cols, ("id",), 3)


def with_types(types: dict[str, str]) -> contract.Contract:
    doc = copy.deepcopy(DOC)
    doc["tables"][0]["target"]["types"] = types
    return contract.parse(doc)


@pytest.mark.parametrize(
    "types",
    [
        {"created": "epoch_seconds", "born": "epoch_millis"},
        {"created": "iso8601", "born": "string"},
        {"id": "string", "email": "number"},
        {"email": "json"},
        {"roles": "string", "photo": "binary"},
    ],
)
def test_types_each_source_kind_can_be_written_as_pass(typed_users, types):
    check_against_source(with_types(types), {"users": typed_users})


@pytest.mark.parametrize(
    ("column_name", "encoding", "column_type", "allowed"),
    [
        ("email", "epoch_seconds", "varchar", "json, number, string"),
        ("id", "iso8601", "int", "number, string"),
        ("photo", "string", "blob", "binary"),
        ("created", "number", "datetime(6)", "epoch_millis, epoch_seconds, iso8601, string"),
        ("roles", "number", "set('a','b')", "string, string_set"),
    ],
)
def test_a_type_the_source_column_cannot_be_written_as_is_refused_with_the_choices(
    typed_users, column_name, encoding, column_type, allowed
):
    with pytest.raises(ContractError) as err:
        check_against_source(with_types({column_name: encoding}), {"users": typed_users})
    assert err.value.problems == [
        f"$.tables[0].target.types.{column_name}: users.{column_name} is {column_type}, "
        f"which cannot be written as {encoding!r} (choose one of: {allowed})"
    ]


def test_types_naming_a_column_the_source_does_not_have_is_reported(typed_users):
    with pytest.raises(ContractError) as err:
        check_against_source(with_types({"mail": "string"}), {"users": typed_users})
    (problem,) = err.value.problems
    assert problem.startswith("$.tables[0].target.types.mail: users has no column 'mail'")
