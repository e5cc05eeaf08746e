"""Each pipeline stage's work on one page, exactly as sluice.stages does it minus S3 and the
manifest. The one place to follow when the library's functions change."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
from sluice import staging, transform
from sluice.contract import Contract, TableSpec
from sluice.source import SourceTable, read_page
from sluice.targets import dynamodb as ddb_target
from sluice.targets import mysql as mysql_target
from sluice.types import arrow_schema


def extract(raw_conn, database: str, src: SourceTable, key: Sequence[str], lo, hi):
    """Keyset page -> Arrow IPC (zstd) bytes: (body, rows)."""
    return staging.write_arrow(
        arrow_schema(src.columns), read_page(raw_conn, database, src, key, lo, hi)
    )


def transform_mysql(body: bytes, spec: TableSpec) -> tuple[bytes, int]:
    page = staging.read_arrow(body)
    rows = transform.to_mysql_rows(page, spec)
    return staging.write_arrow(rows.schema, rows.to_batches())


def item_plan(contract: Contract, spec: TableSpec, page: pa.Table) -> transform.ItemPlan:
    return transform.item_plan(contract, spec, page.column_names, transform.page_kinds(page))


def dynamodb_items(page: pa.Table, plan: transform.ItemPlan):
    """(item lines, rejected) of a staged page."""
    return transform.to_dynamodb_items(page, plan)


def transform_dynamodb(body: bytes, contract: Contract, spec: TableSpec) -> tuple[bytes, int]:
    page = staging.read_arrow(body)
    lines, _rejected = dynamodb_items(page, item_plan(contract, spec, page))
    return staging.gzip_lines(lines), len(lines)


def load_mysql(conn, database: str, table: str, body: bytes, on_conflict: str = "replace") -> int:
    return mysql_target.load_rows(conn, database, table, staging.read_arrow(body), on_conflict)


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
    return ddb_target.write_items(target, table, staging.gunzip_lines(body))
