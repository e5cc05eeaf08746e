"""Each pipeline stage's work on one page, exactly as sluice.stages does it minus S3 and the
manifest. The one place to follow when the library's functions change."""

from __future__ import annotations

import gzip
from collections.abc import Sequence

import pyarrow as pa
from sluice import checksum, staging, transform
from sluice.contract import Contract, TableSpec
from sluice.source import SourceTable, read_page
from sluice.targets import dynamodb as ddb_target
from sluice.targets import mysql as mysql_target
from sluice.types import arrow_schema


def extract(raw_conn, database: str, src: SourceTable, key: Sequence[str], lo, hi):
    """Keyset page -> Arrow IPC (zstd) bytes, summed as it streams: (body, rows)."""
    body, rows, _ = checksum.write_arrow(
        arrow_schema(src.columns), read_page(raw_conn, database, src, key, lo, hi)
    )
    return body, rows


def transform_mysql(body: bytes, spec: TableSpec) -> tuple[bytes, int]:
    page = staging.read_arrow(body)
    checksum.page_sum(page)  # the stage checks the object against the extract's sum
    rows = transform.to_mysql_rows(page, spec)
    body, n, _ = checksum.write_arrow(rows.schema, rows.to_batches())
    return body, n


def item_plan(contract: Contract, spec: TableSpec, page: pa.Table) -> transform.ItemPlan:
    return transform.item_plan(contract, spec, page.column_names, transform.page_kinds(page))


def dynamodb_items(page: pa.Table, plan: transform.ItemPlan):
    """(item lines, rejected) of a staged page."""
    return transform.to_dynamodb_items(page, plan)


def transform_dynamodb(body: bytes, contract: Contract, spec: TableSpec) -> tuple[bytes, int]:
    page = staging.read_arrow(body)
    checksum.page_sum(page)  # the stage checks the object against the extract's sum
    lines, _rejected = dynamodb_items(page, item_plan(contract, spec, page))
    checksum.lines_sum(staging.lines_buffer(lines))
    return staging.gzip_lines(lines), len(lines)


def load_mysql(conn, database: str, table: str, body: bytes, on_conflict: str = "replace") -> int:
    rows = staging.read_arrow(body)
    checksum.page_sum(rows)  # the stage checks the object against the transform's sum
    n = mysql_target.load_rows(conn, database, table, rows, on_conflict)
    checksum.key_ordered_sum(rows, [rows.column_names[0]])  # loaded_sum (the bench key is first)
    return n


def stage_writer(endpoint: str, region: str = "us-east-1"):
    """The writer the load stage uses for an HTTP endpoint: the HTTP writer where the library
    has one (sluice.targets.dynamodb_http), else the SDK client of make_client."""
    try:
        from sluice.targets.dynamodb_http import HttpBatchWriter
    except ImportError:
        return ddb_target.make_client(endpoint, region)
    return HttpBatchWriter(region, endpoint)


def write_items(target, table: str, lines: list[bytes]) -> int:
    return ddb_target.write_items(target, table, lines)


def load_dynamodb(target, table: str, body: bytes) -> int:
    raw = gzip.decompress(body)
    checksum.lines_sum(raw)  # the stage checks the object against the transform's sum
    return ddb_target.write_items(target, table, raw.splitlines())
