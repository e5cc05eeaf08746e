"""All of Sakila into DynamoDB over HTTP: every row becomes one item with exact values."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from decimal import Decimal

import pymysql.cursors
import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer

from .conftest import (
    BINARY_TYPES,
    EMPTY_SET_FILM_ID,
    SPATIAL_TYPES,
    columns_of,
    server_connection,
)

pytestmark = [pytest.mark.mysql, pytest.mark.slow]

NUMBER_TYPES = {
    "tinyint",
    "smallint",
    "mediumint",
    "int",
    "integer",
    "bigint",
    "decimal",
    "float",
    "double",
    "year",
    "bit",
}
ABSENT = object()


def expected_attribute(value, data_type: str):
    """What a source value must be in the item, from the type mapping in the README."""
    if value is None:
        return ABSENT
    if data_type in NUMBER_TYPES:
        return Decimal(str(value))
    if data_type == "set":
        members = set(value) if isinstance(value, set) else set(value.split(","))
        members.discard("")
        return members or ABSENT
    if data_type in BINARY_TYPES | SPATIAL_TYPES:
        return bytes(value)
    # ISO 8601 at the column's own precision: Sakila's DATETIME and TIMESTAMP have none.
    if data_type == "datetime":
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if data_type == "timestamp":  # read in a UTC session
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def _plain(value):
    return value.value if isinstance(value, Binary) else value


def _scan_entities(client, table: str) -> Counter:
    """Items per entity: the partition key's text before its first '#'."""
    counts: Counter = Counter()
    kwargs = {
        "TableName": table,
        "ProjectionExpression": "#pk",
        "ExpressionAttributeNames": {"#pk": "PK"},
    }
    while True:
        page = client.scan(**kwargs)
        counts.update(item["PK"]["S"].split("#", 1)[0] for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return counts
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _sample_rows(rows: list[dict], columns) -> list[dict]:
    """First and last row by key, and per column the first row where it is NULL or an
    empty SET: the rows where an attribute must be missing."""
    picked = [rows[0], rows[-1]]
    for name, data_type, _, _ in columns:
        for row in rows:
            if row[name] is None or (data_type == "set" and row[name] in ("", set())):
                picked.append(row)
                break
    unique = {id(r): r for r in picked}
    return list(unique.values())


def test_whole_sakila_arrives_as_exact_items_at_a_dynamodb_endpoint(
    dynamodb_run, dynamodb_reader, mysql_info, sakila
):
    summary, contract = dynamodb_run.summary, dynamodb_run.contract
    assert summary["status"] == "SUCCEEDED", summary["verdict"]
    (table,) = contract["target"]["tables"]
    assert table in dynamodb_reader.list_tables()["TableNames"]
    des = TypeDeserializer()

    conn = server_connection(mysql_info, sakila)
    try:
        cur = conn.cursor()
        source_counts = {}
        for entry in contract["tables"]:
            cur.execute(f"SELECT COUNT(*) FROM `{entry['source']}`")
            source_counts[entry["source"].upper()] = cur.fetchone()[0]
        assert _scan_entities(dynamodb_reader, table) == source_counts

        seen_types = set()
        dict_cur = conn.cursor(pymysql.cursors.DictCursor)
        for entry in contract["tables"]:
            name, key, target = entry["source"], entry["key"], entry["target"]
            columns = columns_of(cur, sakila, name)
            types = {c[0]: c[1] for c in columns}
            order = ", ".join(f"`{k}`" for k in key)
            dict_cur.execute(f"SELECT * FROM `{name}` ORDER BY {order}")
            rows = dict_cur.fetchall()
            for row in _sample_rows(rows, columns):
                text = {k: str(row[k]) for k in key}
                item_key = {
                    "PK": target["partition_key"].format(**text),
                    "SK": target["sort_key"].format(**text),
                }
                got = dynamodb_reader.get_item(
                    TableName=table, Key={k: {"S": v} for k, v in item_key.items()}
                ).get("Item")
                assert got is not None, f"{name}: no item {item_key}"
                item = {k: _plain(des.deserialize(v)) for k, v in got.items()}
                assert {k: item.pop(k) for k in ("PK", "SK")} == item_key
                want = {}
                for column, value in row.items():
                    exp = expected_attribute(value, types[column])
                    if exp is not ABSENT:
                        want[column] = exp
                        seen_types.add(types[column])
                assert item == want, f"{name} {item_key}"
    finally:
        conn.close()

    # The hard cases were among the values compared.
    assert {
        "decimal",
        "set",
        "enum",
        "year",
        "mediumblob",
        "geometry",
        "timestamp",
        "datetime",
    } <= seen_types


def test_tricky_sakila_values_keep_their_dynamodb_types(dynamodb_run, dynamodb_reader):
    """Spot checks that read as the type mapping: one value of each hard type."""
    (table,) = dynamodb_run.contract["target"]["tables"]

    def item(pk: str, sk: str) -> dict:
        got = dynamodb_reader.get_item(TableName=table, Key={"PK": {"S": pk}, "SK": {"S": sk}})
        return got["Item"]

    payment = item("PAYMENT#1", "PAYMENT")
    assert payment["amount"] == {"N": "2.99"}  # DECIMAL(5,2), never a float
    assert payment["payment_date"] == {"S": "2005-05-25T11:30:37"}  # DATETIME
    assert payment["last_update"] == {"S": "2006-02-15T22:12:30Z"}  # TIMESTAMP, UTC
    film = item("FILM#1", "FILM")
    assert film["release_year"] == {"N": "2006"}  # YEAR
    assert film["rating"] == {"S": "PG"}  # ENUM
    assert set(film["special_features"]["SS"]) == {"Deleted Scenes", "Behind the Scenes"}
    assert "original_language_id" not in film  # NULL: no attribute
    empty_set = item(f"FILM#{EMPTY_SET_FILM_ID}", "FILM")
    assert "special_features" not in empty_set  # empty SET: no attribute
    assert len(item("STAFF#1", "STAFF")["picture"]["B"]) == 36365  # MEDIUMBLOB, as bytes
    film_actor = item("FILM_ACTOR#1", "FILM_ACTOR#1")  # composite key: actor 1, film 1
    assert film_actor["actor_id"] == {"N": "1"} and film_actor["film_id"] == {"N": "1"}
