"""Every MySQL type survives: a type-matrix table into a MySQL target (equal in SQL) and into
DynamoDB (mapped as the README's type table says, checked against an independent reading)."""

from __future__ import annotations

import json
import struct
from decimal import Decimal

import pymysql
import pytest
from boto3.dynamodb.types import TypeDeserializer
from sluice import aws

from .conftest import hex_rows

MATRIX_DDL = """
CREATE TABLE type_matrix (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT NULL, tiu TINYINT UNSIGNED NULL, si SMALLINT NULL, siu SMALLINT UNSIGNED NULL,
  mi MEDIUMINT NULL, miu MEDIUMINT UNSIGNED NULL, i INT NULL, iu INT UNSIGNED NULL,
  bi BIGINT NULL, biu BIGINT UNSIGNED NULL,
  d65 DECIMAL(65,30) NULL, d38 DECIMAL(38,0) NULL, d10 DECIMAL(10,2) NULL,
  f FLOAT NULL, db DOUBLE NULL,
  b1 BIT(1) NULL, b64 BIT(64) NULL,
  dt DATE NULL, dtm DATETIME(6) NULL, ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(6) NULL, yr YEAR NULL,
  c CHAR(12) NULL, vc VARCHAR(100) NULL, tx TEXT NULL,
  bn BINARY(4) NULL, vb VARBINARY(16) NULL, bl BLOB NULL,
  en ENUM('a','b','c d') NULL, st SET('x','y','z') NULL,
  js JSON NULL,
  g GEOMETRY NULL
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""
COLUMNS = [
    "id",
    "ti",
    "tiu",
    "si",
    "siu",
    "mi",
    "miu",
    "i",
    "iu",
    "bi",
    "biu",
    "d65",
    "d38",
    "d10",
    "f",
    "db",
    "b1",
    "b64",
    "dt",
    "dtm",
    "ts",
    "tm",
    "yr",
    "c",
    "vc",
    "tx",
    "bn",
    "vb",
    "bl",
    "en",
    "st",
    "js",
    "g",
]

NINES_65_30 = "99999999999999999999999999999999999.999999999999999999999999999999"
# One row of limits, one of the other limits, all NULL, zero dates and odd text, and small values.
ROWS = [
    (
        1,
        -128,
        0,
        -32768,
        0,
        -8388608,
        0,
        -2147483648,
        0,
        -9223372036854775808,
        0,
        "-" + NINES_65_30,
        "-" + "9" * 38,
        "-99999999.99",
        -3.40282e38,
        -1.7976931348623157e308,
        b"\x00",
        b"\x00" * 8,
        "1000-01-01",
        "1000-01-01 00:00:00",
        "1970-01-01 05:30:01",
        "-838:59:59",
        1901,
        "",
        "",
        "",
        b"\x00" * 4,
        b"\x00",
        b"\x00",
        "a",
        "",
        '{"a": {"b": [1, 2, {"c": null}]}, "big": 123456789012345678901234567890, '
        '"dec": 0.1000000000000000055511151231257827}',
        "POINT(1 2)",
    ),
    (
        2,
        127,
        255,
        32767,
        65535,
        8388607,
        16777215,
        2147483647,
        4294967295,
        9223372036854775807,
        18446744073709551615,
        NINES_65_30,
        "9" * 38,
        "99999999.99",
        3.40282e38,
        1.7976931348623157e308,
        b"\x01",
        b"\xff" * 8,
        "9999-12-31",
        "9999-12-31 23:59:59.999999",
        "2038-01-19 08:44:07.999999",
        "838:59:59",
        2155,
        "trailing  ",
        "trailing  ",
        'tab\there\nnewline \\ backslash "quote"',
        b"\xff" * 4,
        b"\x00\xff\x00\xff",
        b"\x00\x01\x02\x03\x00\xff",
        "c d",
        "x,y,z",
        '[1, -2.5e-7, "x", true, false, null, 18446744073709551616]',
        "LINESTRING(0 0, 1 1, 2 2)",
    ),
    (3,) + (None,) * 32,
    (
        4,
        0,
        1,
        0,
        1,
        0,
        1,
        0,
        1,
        0,
        1,
        "0.000000000000000000000000000001",
        "1",
        "0.01",
        1.2345678,
        0.1,
        b"\x01",
        b"\x05",
        "0000-00-00",
        "0000-00-00 00:00:00",
        "0000-00-00 00:00:00",
        "00:00:00.000001",
        0,
        "😀 emoji",
        "ünïcödé 𝄞 😀 日本",
        "😀" * 1000,
        b"ab\x00\x00",
        b"",
        b"\x00" * 100,
        "b",
        "y",
        '{"nested": {"deep": {"deeper": [{"k": "v"}]}}, "unicode": "😀"}',
        "POLYGON((0 0,1 0,1 1,0 1,0 0))",
    ),
    (
        5,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        "1234.5",
        "12345678901234567890",
        "0",
        1e-30,
        5e-324,
        b"\x00",
        b"\x40" + b"\x00" * 7,
        "2024-02-29",
        "2024-02-29 12:34:56.5",
        "2024-03-31 02:30:00",
        "-00:00:01.5",
        2024,
        " lead",
        "x\ry",
        "ctrl\x01\x1f",
        b"    ",
        b"\\",
        b"\n\r\t",
        "a",
        "x,z",
        "{}",
        None,
    ),
]


def fill_matrix(cur) -> None:
    """type_matrix with ROWS in the cursor's database, written in a session whose time zone is
    not UTC and whose SQL mode allows zero dates."""
    cur.execute("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION', time_zone = '+05:30'")
    cur.execute(MATRIX_DDL)
    placeholders = ", ".join("ST_GeomFromText(%s)" if c == "g" else "%s" for c in COLUMNS)
    cur.executemany(f"INSERT INTO type_matrix VALUES ({placeholders})", ROWS)


# A second entity: a view without the columns DynamoDB cannot hold for rows 1, 2 and 5.
MATRIX_VIEW_DDL = "CREATE VIEW matrix_view AS SELECT {} FROM type_matrix".format(
    ", ".join(c for c in COLUMNS if c not in ("d65", "db"))
)
# The table and the view into one DynamoDB table `matrix` (keys PK, SK): a row's items are
# ROW#<id> / TABLE and ROW#<id> / VIEW.
MATRIX_DYNAMODB_TABLES = [
    {
        "source": "type_matrix",
        "key": ["id"],
        "target": {"table": "matrix", "partition_key": "ROW#{id}", "sort_key": "TABLE"},
    },
    {
        "source": "matrix_view",
        "kind": "view",
        "key": ["id"],
        "target": {
            "table": "matrix",
            "partition_key": "ROW#{id}",
            "sort_key": "VIEW",
            # MariaDB views drop the json_valid() check that marks a JSON column,
            # so the view's column reads as LONGTEXT: the contract says what it is.
            "types": {"js": "json"},
        },
    },
]


@pytest.fixture
def matrix_db(connect, new_database) -> str:
    """The type matrix (`fill_matrix`) in a new database."""
    name = new_database("types")
    with connect(name).cursor() as cur:
        fill_matrix(cur)
    return name


def _contract_mysql(source: str, target: str) -> dict:
    return {
        "version": 1,
        "source": {"database": source},
        "target": {"kind": "mysql", "database": target},
        "tables": [{"source": "type_matrix", "key": ["id"], "target": {"table": "type_matrix"}}],
    }


def _run(stack, doc: dict, run_id: str) -> dict:
    arn = stack.start_execution({"contract": doc, "run_id": run_id, "poll_seconds": 1})
    return stack.wait(arn, timeout=120)


def test_every_type_arrives_equal_in_a_mysql_target(local_stack, matrix_db, new_database, connect):
    target = new_database("types_copy")
    with connect().cursor() as cur:
        cur.execute(f"DROP DATABASE `{target}`")  # the run creates it
    desc = _run(local_stack, _contract_mysql(matrix_db, target), "types-mysql")
    assert desc["status"] == "SUCCEEDED"

    conn = connect()
    with conn.cursor() as cur:
        # Compared in a non-UTC session: TIMESTAMPs are shown shifted, identically on both sides.
        cur.execute("SET SESSION time_zone = '+05:30'")
        source = hex_rows(conn, matrix_db, "type_matrix", ["id"])
        copied = hex_rows(conn, target, "type_matrix", ["id"])
        cur.execute(f"CHECKSUM TABLE `{matrix_db}`.type_matrix, `{target}`.type_matrix")
        sums = [r[1] for r in cur.fetchall()]
    assert len(source) == len(ROWS)
    assert copied == source
    assert sums[0] == sums[1]


# ---------------------------------------------------------------- DynamoDB

_des = TypeDeserializer()


def _source_rows(connect, database: str, view: str = "type_matrix") -> dict[int, dict]:
    """The source rows read independently of sluice: pymysql's own converters, a UTC session,
    FLOAT as DOUBLE, TIME and dates as the server's text."""
    conn = connect(database)
    exprs = []
    for c in COLUMNS:
        if c in ("tm", "dt", "dtm", "ts"):
            exprs.append(f"CAST(`{c}` AS CHAR) AS `{c}`")
        elif c == "f":
            exprs.append("CAST(f AS DOUBLE) AS f")
        else:
            exprs.append(f"`{c}`")
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SET SESSION time_zone = '+00:00'")
        cur.execute(f"SELECT {', '.join(exprs)} FROM `{view}` ORDER BY id")
        return {r["id"]: r for r in cur.fetchall()}


def _expected(row: dict) -> dict:
    """The README's DynamoDB mapping, written out for one source row (NULL: no attribute)."""
    out = {}
    for c in COLUMNS:
        v = row.get(c)
        if v is None:
            continue
        if c in ("b1", "b64"):
            out[c] = Decimal(int.from_bytes(v, "big"))
        elif c == "f":
            out[c] = ("float32", struct.pack("<f", v))
        elif c == "db":
            out[c] = ("float64", v)
        elif isinstance(v, int | Decimal):
            out[c] = Decimal(v)
        elif c == "dt":
            out[c] = v
        elif c == "dtm":
            out[c] = v.replace(" ", "T", 1)
        elif c == "ts":
            out[c] = v.replace(" ", "T", 1) + "Z"
        elif c == "st":
            if v:
                out[c] = set(v.split(","))
        elif c == "js":
            out[c] = json.loads(v, parse_float=Decimal, parse_int=Decimal)
        elif isinstance(v, bytes):
            out[c] = v
        else:
            out[c] = v
    return out


def _actual(item: dict) -> dict:
    out = {}
    for k, v in item.items():
        if k in ("PK", "SK"):
            continue
        value = _des.deserialize(v)
        if k == "f":
            value = ("float32", struct.pack("<f", float(value)))
        elif k == "db":
            value = ("float64", float(value))
        elif hasattr(value, "value") and isinstance(value.value, bytes):  # boto3 Binary
            value = value.value
        out[k] = value
    return out


def test_every_type_maps_to_dynamodb_as_documented(local_stack, matrix_db, connect):
    with connect(matrix_db).cursor() as cur:
        cur.execute(MATRIX_VIEW_DDL)
    doc = {
        "version": 1,
        "source": {"database": matrix_db},
        "target": {
            "kind": "dynamodb",
            "tables": {"matrix": {"partition_key": "PK", "sort_key": "SK"}},
        },
        "tables": MATRIX_DYNAMODB_TABLES,
    }
    desc = _run(local_stack, doc, "types-ddb")
    assert desc["status"] == "SUCCEEDED"

    items = aws.client("dynamodb").scan(TableName="matrix")["Items"]
    by_key = {(i["PK"]["S"], i["SK"]["S"]): i for i in items}
    table_rows = _source_rows(connect, matrix_db)
    view_rows = _source_rows(connect, matrix_db)  # same values; the view leaves out two columns

    # The table: rows 1 and 2 hold DECIMAL(65,30) values of 65 digits and row 5 a DOUBLE below
    # 1E-130: rejected with their reasons, not rounded. Rows 3 and 4 arrive.
    assert {k for k in by_key if k[1] == "TABLE"} == {("ROW#3", "TABLE"), ("ROW#4", "TABLE")}
    for rid in (3, 4):
        assert _actual(by_key[(f"ROW#{rid}", "TABLE")]) == _expected(table_rows[rid])
    rejected = _rejected(local_stack, "types-ddb", "type_matrix")
    assert rejected == {
        1: "d65: more than 38 significant digits, which a DynamoDB number cannot hold",
        2: "d65: more than 38 significant digits, which a DynamoDB number cannot hold",
        5: "db: outside DynamoDB's number range (1E-130 .. 9.9E+125)",
    }

    # The view: every row arrives, every value as documented.
    assert {k for k in by_key if k[1] == "VIEW"} == {(f"ROW#{r}", "VIEW") for r in range(1, 6)}
    for rid, row in view_rows.items():
        want = {k: v for k, v in _expected(row).items() if k not in ("d65", "db")}
        assert _actual(by_key[(f"ROW#{rid}", "VIEW")]) == want, f"row {rid}"

    # Spot checks of the mapping table, spelled out.
    row2 = by_key[("ROW#2", "VIEW")]
    assert row2["biu"] == {"N": "18446744073709551615"}
    assert row2["st"] == {"SS": ["x", "y", "z"]} or set(row2["st"]["SS"]) == {"x", "y", "z"}
    assert row2["js"]["L"][6] == {"N": "18446744073709551616"}
    assert row2["dtm"] == {"S": "9999-12-31T23:59:59.999999"}
    assert row2["ts"] == {"S": "2038-01-19T03:14:07.999999Z"}  # written at +05:30, read as UTC
    row4 = by_key[("ROW#4", "VIEW")]
    assert "st" in row4 and "c" in row4 and row4["dt"] == {"S": "0000-00-00"}
    assert "st" not in by_key[("ROW#1", "VIEW")]  # the empty SET has no string-set form
    assert row4["bl"]["B"] == b"\x00" * 100  # the client decodes B from base64


def _rejected(stack, run_id: str, table: str) -> dict[int, str]:
    body = (
        aws.client("s3")
        .get_object(
            Bucket=stack.environment["SLUICE_BUCKET"],
            Key=f"runs/{run_id}/rejected/{table}/p000001.rejected.jsonl",
        )["Body"]
        .read()
    )
    return {json.loads(line)["key"]["id"]: json.loads(line)["reason"] for line in body.splitlines()}


def test_two_rows_mapping_to_one_dynamodb_key_are_reported_not_merged(local_stack, matrix_db):
    doc = {
        "version": 1,
        "source": {"database": matrix_db},
        "target": {"kind": "dynamodb", "tables": {"clash": {"partition_key": "PK"}}},
        # Every row of the same ENUM value renders the same key.
        "tables": [
            {
                "source": "type_matrix",
                "key": ["id"],
                "columns": {"include": ["en"]},
                "target": {"table": "clash", "partition_key": "EN#{en}"},
            }
        ],
    }
    desc = _run(local_stack, doc, "types-clash")
    assert desc["status"] == "SUCCEEDED"
    items = aws.client("dynamodb").scan(TableName="clash")["Items"]
    assert sorted(i["PK"]["S"] for i in items) == ["EN#a", "EN#b", "EN#c d"]
    rejected = _rejected(local_stack, "types-clash", "type_matrix")
    # Row 3 has no ENUM value (a NULL key column); row 5 repeats row 1's 'a'.
    assert rejected[3] == "PK template 'EN#{en}': column en is NULL"
    assert rejected[5].startswith("duplicate target key")
    assert len(items) + len(rejected) == len(ROWS)


def test_rows_of_different_pages_sharing_a_dynamodb_key_fail_verification_by_name(
    local_stack, matrix_db
):
    doc = {
        "version": 1,
        "source": {"database": matrix_db},
        "target": {"kind": "dynamodb", "tables": {"clash2": {"partition_key": "PK"}}},
        "defaults": {"page_size": 1},  # every row its own page: no page sees the repeat
        "tables": [
            {
                "source": "type_matrix",
                "key": ["id"],
                "columns": {"include": ["en"]},
                "target": {"table": "clash2", "partition_key": "EN#{en}"},
            }
        ],
    }
    desc = _run(local_stack, doc, "types-clash-pages")
    assert desc["status"] == "FAILED"
    report = json.loads(
        aws.client("s3")
        .get_object(
            Bucket=local_stack.environment["SLUICE_BUCKET"],
            Key="runs/types-clash-pages/verify.json",
        )["Body"]
        .read()
    )
    assert not report["ok"]
    shared = report["dynamodb_tables"]["clash2"]["shared_keys"]
    assert shared == [
        {"key": '"PK":{"S":"EN#a"}', "rows": [["type_matrix", "1"], ["type_matrix", "5"]]}
    ]
    assert "EN#a" in report["verdict"] and "type_matrix(1)" in report["verdict"]
