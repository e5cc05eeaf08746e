"""Per-stage throughput, measured in-process on real pages of the benchmark table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import boto3
import pymysql.cursors
from boto3.dynamodb.types import TypeDeserializer
from sluice import db, source, staging
from sluice.contract import parse
from sluice.fetch import fetch_lines
from sluice.keys import cut_pages
from sluice.targets import dynamodb as ddb_target
from sluice.targets import mysql as mysql_target

from . import calls
from .common import Timing, log, sql, timed
from .data import DDL, TABLE


@dataclass
class Figure:
    """One measured step: rows (or items) through it, wall and CPU seconds."""

    name: str
    rows: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    note: str = ""

    def add(self, t: Timing, rows: int) -> None:
        self.rows += rows
        self.wall += t.wall
        self.cpu += t.cpu

    @property
    def per_second(self) -> float:
        return self.rows / self.wall if self.wall else 0.0

    @property
    def per_cpu_second(self) -> float:
        return self.rows / self.cpu if self.cpu else 0.0


@dataclass
class StageResults:
    figures: dict[str, Figure] = field(default_factory=dict)
    bytes_per_row: dict[str, float] = field(default_factory=dict)

    def fig(self, key: str, name: str, note: str = "") -> Figure:
        return self.figures.setdefault(key, Figure(name, note=note))


def contract_doc(kind: str, src: str, *, dst: str = "", endpoint: str = "", page_size: int):
    """The benchmark's contract: the whole table into MySQL, or into one DynamoDB table."""
    table = {"source": TABLE, "key": ["id"]}
    if kind == "mysql":
        target = {"kind": "mysql", "database": dst}
        table["target"] = {"table": TABLE}
    else:
        target = {
            "kind": "dynamodb",
            "endpoint_url": endpoint,
            "tables": {"bench": {"partition_key": "PK", "sort_key": "SK"}},
        }
        table["target"] = {
            "table": "bench",
            "partition_key": "CUSTOMER#{customer_id}",
            "sort_key": "ORDER#{id}",
        }
    return {
        "version": 1,
        "source": {"database": src},
        "target": target,
        "defaults": {"page_size": page_size},
        "tables": [table],
    }


def measure(
    info,
    src: str,
    dst: str,
    endpoint: str,
    *,
    page_size: int,
    pages: int,
    batch_writer_rows: int,
) -> StageResults:
    """Extract, transform (both targets) and load `pages` pages of `page_size` rows, one
    stage at a time, then the DynamoDB writer alone beside boto3's batch_writer."""
    res = StageResults()
    conn = db.connect(info.with_database(src))
    raw = db.connect(info.with_database(src), raw=True)
    sql(info, f"DROP DATABASE IF EXISTS `{dst}`", f"CREATE DATABASE `{dst}`")
    sql(info, DDL, database=dst)
    target = db.connect(info.with_database(dst), local_infile=True)
    try:
        table = source.introspect(conn, src, only=[TABLE])[TABLE]
        ranges = cut_pages(raw, src, TABLE, ["id"], page_size)[:pages]
        mysql_c = parse(contract_doc("mysql", src, dst=dst, page_size=page_size))
        ddb_c = parse(contract_doc("dynamodb", src, endpoint=endpoint, page_size=page_size))
        mysql_spec, ddb_spec = mysql_c.table(TABLE), ddb_c.table(TABLE)

        extracted = measure_extract(res, raw, src, table, ranges)
        rows = res.figures["extract"].rows
        res.bytes_per_row["extracted (Arrow IPC zstd)"] = sum(map(len, extracted)) / rows

        log("bench: stages: transform for MySQL ...")
        loadable: list[bytes] = []
        for body in extracted:
            with timed() as t:
                out, n = calls.transform_mysql(body, mysql_spec)
            res.fig("t_mysql", "transform MySQL: read + to_mysql_rows + write").add(t, n)
            loadable.append(out)
        res.bytes_per_row["transformed for MySQL (Arrow IPC zstd)"] = sum(map(len, loadable)) / rows

        log("bench: stages: transform for DynamoDB ...")
        item_lines: list[bytes] = []
        gz_bytes = 0
        for body in extracted:
            page = staging.read_arrow(body)
            plan = calls.item_plan(ddb_c, ddb_spec, page)
            with timed() as t:
                lines, _rejected = calls.dynamodb_items(page, plan)
            res.fig("t_ddb", "transform DynamoDB: to_dynamodb_items").add(t, len(lines))
            with timed() as t:
                gz = staging.gzip_lines(lines)
            res.fig("gzip", "staging.gzip_lines (level 1)").add(t, len(lines))
            gz_bytes += len(gz)
            item_lines.extend(lines.to_pylist())
        res.bytes_per_row["transformed for DynamoDB (JSON lines, gzip)"] = gz_bytes / rows
        res.bytes_per_row["DynamoDB item JSON (uncompressed)"] = sum(map(len, item_lines)) / rows

        log("bench: stages: load into MySQL ...")
        for body in loadable:
            page = staging.read_arrow(body)
            with timed() as t:
                mysql_target.encode_load_data(page)
            res.fig("encode", "encode_load_data alone (client side)").add(t, page.num_rows)
            with timed() as t:
                n = calls.load_mysql(target, dst, TABLE, body)
            res.fig("load", "load MySQL: targets.mysql.load_rows (client CPU)").add(t, n)

        log(f"bench: DynamoDB writers: {len(item_lines):,} items into the null endpoint ...")
        client = ddb_target.make_client(endpoint, "us-east-1")
        ddb_target.ensure_table(client, ddb_c.dynamo_tables["bench"])
        writer = calls.stage_writer(endpoint)
        if writer is not client and not hasattr(writer, "meta"):
            with timed() as t:
                n = calls.write_items(writer, "bench", item_lines)
            name = f"sluice write_items with {type(writer).__name__} (the load stage's, 4 threads)"
            res.fig("writer", name).add(t, n)
        with timed() as t:
            n = calls.write_items(client, "bench", item_lines)
        key = "writer_sdk" if "writer" in res.figures else "writer"
        res.fig(key, "sluice write_items with make_client (SDK, prebuilt bodies, 4 threads)").add(
            t, n
        )

        items = _as_dicts(item_lines[:batch_writer_rows])
        log(f"bench: boto3 batch_writer: {len(items):,} items into the null endpoint ...")
        table_r = boto3.resource("dynamodb", endpoint_url=endpoint, region_name="us-east-1").Table(
            "bench"
        )
        with timed() as t, table_r.batch_writer() as bw:
            for item in items:
                bw.put_item(Item=item)
        res.fig("batch_writer", "boto3 Table.batch_writer() (defaults)").add(t, len(items))
    finally:
        for c in (conn, raw, target):
            c.close()
    return res


def measure_extract(res: StageResults, raw, src: str, table, ranges) -> list[bytes]:
    """The extract figures of `ranges`: the driver alone on read_page's query and on the
    column-by-column query, read_page, write_arrow, and both together. Returns the pages."""
    log(f"bench: stages: extract {len(ranges)} pages ...")
    extracted: list[bytes] = []
    for r in ranges:
        lo, hi = source.decode_key(r.lo), source.decode_key(r.hi)
        lines = source.line_query(src, table, ["id"], lo, hi)
        with timed() as t:  # read_page's reading alone: the lines as bytes, nothing else
            n = _fetch_only(raw, *lines, fast=True)
        res.fig("fetch", "sluice.fetch.fetch_lines alone (one line a row)").add(t, n)
        with timed() as t:  # the driver alone: rows as Python tuples, nothing else
            n = _fetch_only(raw, *lines)
        res.fig("fetch_pymysql", "pymysql fetch alone (SSCursor, raw, one line a row)").add(t, n)
        with timed() as t:
            n = _fetch_only(raw, *source.page_query(src, table, ["id"], lo, hi))
        res.fig("fetch_columns", "pymysql fetch alone (SSCursor, raw, column by column)").add(t, n)
        with timed() as t:
            batches = list(source.read_page(raw, src, table, ["id"], lo, hi))
        n = sum(b.num_rows for b in batches)
        res.fig("read_page", "source.read_page (fetch + Arrow)").add(t, n)
        with timed() as t:
            body, n = staging.write_arrow(batches[0].schema, batches)
        res.fig("write_arrow", "staging.write_arrow (IPC zstd)").add(t, n)
        with timed() as t:
            body, n = calls.extract(raw, src, table, ["id"], lo, hi)
        res.fig("extract", "extract: read_page + write_arrow").add(t, n)
        extracted.append(body)
    return extracted


def _fetch_only(raw, query: str, params, fast: bool = False) -> int:
    """Rows read of `query`: by sluice.fetch (`fast`, one column a row) or by pymysql."""
    cur = raw.cursor(pymysql.cursors.SSCursor)
    n = 0
    try:
        cur.execute(query, params)
        while rows := (fetch_lines(cur, 20_000) if fast else cur.fetchmany(20_000)):
            n += len(rows)
    finally:
        cur.close()
    return n


def _as_dicts(lines: list[bytes]) -> list[dict]:
    """The same items as boto3's Python values (Decimal numbers, str, dict), for batch_writer."""
    des = TypeDeserializer()
    return [{k: des.deserialize(v) for k, v in json.loads(line)["Item"].items()} for line in lines]


def main(argv=None) -> int:
    """Only the extract figures, on a generated table (the rest: python -m bench.run)."""
    import argparse
    import os

    from . import data
    from .common import server

    p = argparse.ArgumentParser(prog="python -m bench.stages", description=main.__doc__)
    p.add_argument("--rows", type=int, default=300_000, help="rows in the generated table")
    p.add_argument("--page-size", type=int, default=50_000)
    p.add_argument("--keep", action="store_true", help="reuse the table of an earlier --keep")
    args = p.parse_args(argv)
    info = server()
    src = "sluice_bench_stages_src" if args.keep else f"sluice_bench_stages_{os.getpid()}_src"
    made = False
    if not (args.keep and sql(info, "SHOW DATABASES LIKE %s", params=(src,))):
        log(f"bench: stages: generating {args.rows:,} rows ...")
        data.create(info, src, args.rows)
        made = True
    raw = db.connect(info.with_database(src), raw=True)
    try:
        table = source.introspect(raw, src, only=[TABLE])[TABLE]
        res = StageResults()
        measure_extract(res, raw, src, table, cut_pages(raw, src, TABLE, ["id"], args.page_size))
    finally:
        raw.close()
        if made and not args.keep:
            sql(info, f"DROP DATABASE `{src}`")
    print("| figure | rows | wall s | CPU s | rows per CPU-second |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for f in res.figures.values():
        print(f"| {f.name} | {f.rows:,} | {f.wall:.2f} | {f.cpu:.2f} | {f.per_cpu_second:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
