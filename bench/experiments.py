"""Measured alternatives for the hot spots the profile found; nothing here is used by sluice.

    .venv/bin/python -m bench.experiments [--rows N]

Each experiment runs the library's current code and one alternative on the same pages, checks
that both give identical results, and prints rows (or items) per CPU-second of each:

- extract: pymysql parsing every column of every row (the reader before sluice.rowlines),
  against source.read_page (the server joins each row into one line with a header of lengths,
  Arrow splits it) and the server joining each row into one CSV line (CONCAT_WS, strings
  quoted) that pyarrow.csv parses;
- JSON attributes: transform._json_value, against a cached decoder, wire JSON written while
  walking the value, and a fast path for numbers that obviously fit;
- DynamoDB writer: targets.dynamodb.write_items with the SDK client (botocore per request),
  with the library's HTTP writer where it has one, and with the same prebuilt bodies signed
  by botocore's SigV4Auth and sent with urllib3;
- a DynamoDB transform worker's peak RSS for a 200,000-row page: whole page at once, against
  slices of 25,000 rows gzip-streamed.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from json.encoder import encode_basestring
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pymysql.cursors
from sluice import db, source, staging, transform
from sluice.contract import parse
from sluice.keys import cut_pages
from sluice.sql import q, qualified
from sluice.targets import dynamodb as ddb_target
from sluice.types import arrow_schema

from . import calls, data, machine, stages
from .common import PY, ROOT, log, server, sql
from .endpoint import NullDynamo

TEXT_KINDS = {"text", "json", "enum", "set", "time", "date", "datetime", "timestamp"}


def _clock(pid):
    return time.perf_counter(), time.process_time(), machine.server_cpu_seconds(pid)


def _since(start, pid):
    w, c, s = start
    return (
        time.perf_counter() - w,
        time.process_time() - c,
        machine.server_cpu_seconds(pid) - s,
    )


# ---------------------------------------------------------------- A: extract


def csv_lines_query(database: str, table, lo, hi) -> tuple[str, list]:
    """One CSV line a row, made by the server: strings quoted (quotes doubled), NULL empty."""

    def field(c) -> str:
        e = q(c.name)
        if c.kind in TEXT_KINDS:
            e = f"CONCAT('\"', REPLACE({e}, '\"', '\"\"'), '\"')"
        return f"IFNULL({e}, '')"

    where, params = source.range_predicate(["id"], lo, hi)
    cols = ", ".join(field(c) for c in table.columns)
    return (
        f"SELECT CONCAT_WS(',', {cols}) FROM {qualified(database, table.name)} "  # noqa: S608
        f"WHERE {where} ORDER BY `id`",
        params,
    )


def read_page_csv(raw, database: str, table, lo, hi) -> pa.Table:
    query, params = csv_lines_query(database, table, lo, hi)
    cur = raw.cursor(pymysql.cursors.SSCursor)
    lines: list[str] = []
    try:
        cur.execute(query, params)
        while rows := cur.fetchmany(20_000):
            lines.extend(r[0] for r in rows)
    finally:
        cur.close()
    names = [c.name for c in table.columns]
    parsed = pcsv.read_csv(
        io.BytesIO(("\n".join(lines) + "\n").encode()),
        read_options=pcsv.ReadOptions(column_names=names),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types={c.name: c.wire_type() for c in table.columns},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    schema = arrow_schema(table.columns)
    arrays = []
    for i, name in enumerate(names):
        a = parsed.column(name).combine_chunks()
        arrays.append(a if a.type == schema.field(i).type else pc.cast(a, schema.field(i).type))
    return pa.Table.from_arrays(arrays, schema=schema)


def extract_experiment(info, src: str, pages) -> list[dict]:
    raw = db.connect(info.with_database(src), raw=True)
    table = source.introspect(raw, src, only=[data.TABLE])[data.TABLE]
    schema = arrow_schema(table.columns)
    pid = machine.server_pid(info)

    def by_columns(lo, hi):
        return pa.Table.from_batches(
            list(source._read_by_columns(raw, src, table, ["id"], lo, hi, chunk_rows=20_000)),
            schema=schema,
        )

    def current(lo, hi):
        return pa.Table.from_batches(
            list(source.read_page(raw, src, table, ["id"], lo, hi)), schema=schema
        )

    out, ref = [], None
    for name, fn in (
        ("pymysql parses every column (read_page before rowlines)", by_columns),
        ("source.read_page (server-built lines with a length header, split by Arrow)", current),
        (
            "server CONCAT_WS -> one CSV line a row -> pyarrow.csv",
            lambda lo, hi: read_page_csv(raw, src, table, lo, hi),
        ),
    ):
        start, got = _clock(pid), []
        for p in pages:
            got.append(fn(source.decode_key(p.lo), source.decode_key(p.hi)))
        wall, cpu, srv = _since(start, pid)
        rows = sum(t.num_rows for t in got)
        same = ref is None or all(a.equals(b) for a, b in zip(ref, got, strict=True))
        ref = ref or got
        out.append({"name": name, "n": rows, "wall": wall, "cpu": cpu, "server": srv, "same": same})
    raw.close()
    return out


# ---------------------------------------------------------------- B: JSON attributes

_DECODER = json.JSONDecoder(parse_float=Decimal)
_LIMIT = 10**38


def _fast_number(d) -> str:
    if type(d) is int:
        return str(d) if -_LIMIT < d < _LIMIT else transform._check_number(Decimal(d))
    s = str(d)
    # No exponent and at most 38 characters: at most 38 digits, and within 1E-130..9.9E125.
    return s if len(s) <= 38 and "E" not in s else transform._check_number(d)


def _wire(v) -> str:
    t = type(v)
    if t is str:
        return '{"S":' + encode_basestring(v) + "}"
    if t is dict:
        return (
            '{"M":{' + ",".join(encode_basestring(k) + ":" + _wire(x) for k, x in v.items()) + "}}"
        )
    if t is Decimal or t is int:
        return '{"N":"' + _fast_number(v) + '"}'
    if t is bool:
        return '{"BOOL":true}' if v else '{"BOOL":false}'
    if v is None:
        return '{"NULL":true}'
    if t is list:
        return '{"L":[' + ",".join(map(_wire, v)) + "]}"
    raise TypeError(t)


def json_value_fast(v: str) -> str:
    return _wire(_DECODER.decode(v))


def json_experiment(values: list[str]) -> list[dict]:
    out, ref = [], None
    for name, fn in (
        ("transform._json_value (the library's, as it is)", transform._json_value),
        ("cached decoder + wire JSON written while walking", json_value_fast),
    ):
        start = _clock(None)
        got = [fn(v) for v in values]
        wall, cpu, _ = _since(start, None)
        same = ref is None or [json.loads(x) for x in got] == [json.loads(x) for x in ref]
        ref = ref or got
        out.append({"name": name, "n": len(values), "wall": wall, "cpu": cpu, "same": same})
    return out


# ---------------------------------------------------------------- C: DynamoDB writer


class DirectWriter:
    """BatchWriteItem of prebuilt bodies: SigV4 by botocore's signer, sent by urllib3."""

    def __init__(self, endpoint: str, region: str, threads: int = 4):
        import boto3
        import urllib3
        from botocore.auth import SigV4Auth

        creds = boto3.session.Session().get_credentials().get_frozen_credentials()
        self.signer = SigV4Auth(creds, "dynamodb", region)
        self.url = endpoint.rstrip("/") + "/"
        self.pool = urllib3.PoolManager(maxsize=threads)
        self.threads = threads

    def _send(self, table: str, lines: list[bytes]) -> None:
        from botocore.awsrequest import AWSRequest

        body = ddb_target._request_body(table, lines)
        req = AWSRequest(
            method="POST",
            url=self.url,
            data=body,
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "DynamoDB_20120810.BatchWriteItem",
            },
        )
        self.signer.add_auth(req)
        resp = self.pool.request("POST", self.url, body=body, headers=dict(req.headers.items()))
        if resp.status != 200 or json.loads(resp.data).get("UnprocessedItems"):
            raise RuntimeError("experiment: the null endpoint refused a batch")

    def write(self, table: str, lines: list[bytes]) -> int:
        batches = [lines[i : i + 25] for i in range(0, len(lines), 25)]
        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(lambda b: self._send(table, b), batches))
        return len(lines)


def writer_experiment(endpoint: str, lines: list[bytes]) -> list[dict]:
    client = ddb_target.make_client(endpoint, "us-east-1")
    direct = DirectWriter(endpoint, "us-east-1")
    variants = [
        (
            "write_items with make_client (botocore, 4 threads)",
            lambda: ddb_target.write_items(client, "bench", lines),
        )
    ]
    stage = calls.stage_writer(endpoint)
    if not hasattr(stage, "meta"):  # the library's own HTTP writer
        variants.append(
            (
                f"write_items with {type(stage).__name__} (4 threads)",
                lambda: ddb_target.write_items(stage, "bench", lines),
            )
        )
    variants.append(
        ("botocore SigV4Auth + urllib3 (4 threads)", lambda: direct.write("bench", lines))
    )
    out = []
    for name, fn in variants:
        start = _clock(None)
        n = fn()
        wall, cpu, _ = _since(start, None)
        out.append({"name": name, "n": n, "wall": wall, "cpu": cpu, "same": True})
    return out


# ---------------------------------------------------------------- D: transform RSS


def _memory_child(mode: str, page_file: str, contract_file: str) -> None:
    """(child process) one DynamoDB transform of a page; prints its peak RSS in MB."""
    from sluice.contract import load_document

    from .worker import status_mb

    body = Path(page_file).read_bytes()
    contract = parse(load_document(contract_file))
    spec = contract.table(data.TABLE)
    if mode == "whole":
        out, _ = calls.transform_dynamodb(body, contract, spec)
    else:
        page = staging.read_arrow(body)
        plan = calls.item_plan(contract, spec, page)
        sink = io.BytesIO()
        with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=1) as gz:
            for start in range(0, page.num_rows, 25_000):
                lines, _ = calls.dynamodb_items(page.slice(start, 25_000), plan)
                _, offsets, buf = lines.buffers()
                view = memoryview(offsets).cast("i")
                gz.write(memoryview(buf)[view[lines.offset] : view[lines.offset + len(lines)]])
        out = sink.getvalue()
    print(json.dumps({"peak_mb": status_mb("VmHWM"), "bytes": len(out)}))


def memory_experiment(info, src: str, endpoint: str, tmp: Path) -> list[dict]:
    page_file, contract_file = tmp / "page.arrow", tmp / "contract.json"
    doc = stages.contract_doc("dynamodb", src, endpoint=endpoint, page_size=200_000)
    contract_file.write_text(json.dumps(doc))
    raw = db.connect(info.with_database(src), raw=True)
    table = source.introspect(raw, src, only=[data.TABLE])[data.TABLE]
    first = cut_pages(raw, src, data.TABLE, ["id"], 200_000)[0]
    body, rows = calls.extract(
        raw, src, table, ["id"], source.decode_key(first.lo), source.decode_key(first.hi)
    )
    raw.close()
    page_file.write_bytes(body)
    out = []
    for mode, name in (
        ("whole", "to_dynamodb_items on the whole page, gzip_lines"),
        ("slices", "slices of 25,000 rows, gzip streamed"),
    ):
        start = _clock(None)
        p = subprocess.run(
            [
                PY,
                "-m",
                "bench.experiments",
                "--memory-child",
                mode,
                str(page_file),
                str(contract_file),
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        wall, _, _ = _since(start, None)
        doc = json.loads(p.stdout.strip().splitlines()[-1])
        out.append({"name": name, "n": rows, "wall": wall, "peak_mb": doc["peak_mb"]})
    return out


# ---------------------------------------------------------------- driver


def _table(title: str, unit: str, results: list[dict]) -> str:
    lines = [
        f"#### {title}",
        "",
        f"| variant | {unit} | wall s | {unit}/s | CPU s | {unit} per CPU-second "
        "| vs the first | server CPU s | identical |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    base = results[0]
    for r in results:
        srv = f"{r['server']:.2f}" if "server" in r else "-"
        lines.append(
            f"| {r['name']} | {r['n']:,} | {r['wall']:.2f} | {r['n'] / r['wall']:,.0f} | "
            f"{r['cpu']:.2f} | {r['n'] / r['cpu']:,.0f} | {base['cpu'] / r['cpu']:.1f}x | {srv} "
            f"| {'yes' if r['same'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import tempfile

    p = argparse.ArgumentParser(prog="python -m bench.experiments")
    p.add_argument("--rows", type=int, default=300_000)
    p.add_argument("--memory-child", nargs=3, metavar=("MODE", "PAGE", "CONTRACT"))
    args = p.parse_args(argv)
    if args.memory_child:
        _memory_child(*args.memory_child)
        return 0
    for k, v in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}.items():
        os.environ.setdefault(k, v)
    info = server()
    src = f"sluice_bench_exp_{os.getpid()}_src"
    sections = []
    try:
        log(f"experiments: generating {max(args.rows, 200_000):,} rows ...")
        data.create(info, src, max(args.rows, 200_000))
        raw = db.connect(info.with_database(src), raw=True)
        pages = cut_pages(raw, src, data.TABLE, ["id"], 50_000)[: max(1, args.rows // 50_000)]
        raw.close()
        log("experiments: extract ...")
        sections.append(
            _table(
                "Extract: pages of 50,000 rows into Arrow",
                "rows",
                extract_experiment(info, src, pages),
            )
        )
        with NullDynamo() as nd, tempfile.TemporaryDirectory() as tmp:
            contract = parse(
                stages.contract_doc("dynamodb", src, endpoint=nd.url, page_size=50_000)
            )
            raw = db.connect(info.with_database(src), raw=True)
            table = source.introspect(raw, src, only=[data.TABLE])[data.TABLE]
            values, lines = [], []
            for pg in pages:
                body, _ = calls.extract(
                    raw, src, table, ["id"], source.decode_key(pg.lo), source.decode_key(pg.hi)
                )
                page = staging.read_arrow(body)
                values += [v for v in page.column("attrs").to_pylist() if v is not None]
                items, _ = calls.dynamodb_items(
                    page, calls.item_plan(contract, contract.table(data.TABLE), page)
                )
                lines += items.to_pylist()
            raw.close()
            log("experiments: JSON attributes ...")
            sections.append(
                _table(
                    "JSON column -> DynamoDB wire JSON, one value at a time",
                    "values",
                    json_experiment(values),
                )
            )
            log("experiments: DynamoDB writer ...")
            sections.append(
                _table(
                    "DynamoDB writer, prebuilt item lines, null endpoint",
                    "items",
                    writer_experiment(nd.url, lines),
                )
            )
            log("experiments: DynamoDB transform peak RSS ...")
            mem = memory_experiment(info, src, nd.url, Path(tmp))
            sections.append(
                "\n".join(
                    [
                        "#### DynamoDB transform worker, one page of 200,000 rows",
                        "",
                        "| variant | rows | seconds (process) | peak RSS MB |",
                        "| --- | ---: | ---: | ---: |",
                    ]
                    + [
                        f"| {r['name']} | {r['n']:,} | {r['wall']:.2f} | {r['peak_mb']:.0f} |"
                        for r in mem
                    ]
                )
                + "\n"
            )
    finally:
        sql(info, f"DROP DATABASE IF EXISTS `{src}`")
    print("\n".join(sections))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
