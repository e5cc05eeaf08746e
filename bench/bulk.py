"""Bulk path (Glue job on local PySpark) against the Lambda path, same table, same machine.

    .venv/bin/python -m bench.bulk [--rows 1000000] [--page-size 50000] [--targets mysql,dynamodb]
                                   [--write]

Each run is a whole `sluice run --local` (plan, pages, verify) of the bench table
(bench/data.py) with the table's path forced by the contract ("path": "lambda" | "bulk").
MySQL targets are databases of the same server; DynamoDB goes to the bench's null endpoint
(bench/null_dynamo.py) so the figure is Sluice's and not an emulator's. The Spark session is
started once before the runs (its start-up is reported apart: a Glue job pays its own). With
--write, the figures replace the bulk block of bench/RESULTS.md (outside `make bench`'s
markers).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

from . import data
from .common import ROOT, ensure_server, log, server, sql
from .endpoint import NullDynamo

DATABASE = "sluice_bench_bulk"
BEGIN = "<!-- bench-bulk:begin: written by `python -m bench.bulk --write` -->"
END = "<!-- bench-bulk:end -->"
NOTE = (
    "- why the bulk path is not faster here: the database server, Spark's two task slots and "
    "the Lambda path's in-process stages all share the same 2 cores; the bulk path also pays "
    "a JDBC scan of the keys (range counts and checksums), Spark's scheduling and Python "
    "workers. Its gain is horizontal (Glue workers, each task with its own connections), "
    "which one machine cannot show"
)


def contract(target: str, path: str, page_size: int, target_db: str) -> dict:
    entry = {"source": data.TABLE, "key": ["id"], "path": path}
    if target == "mysql":
        entry["target"] = {"table": data.TABLE}
        tgt = {"kind": "mysql", "database": target_db}
    else:
        entry["target"] = {"table": "bench", "partition_key": "ORDER#{id}", "sort_key": "ORDER"}
        tgt = {"kind": "dynamodb", "tables": {"bench": {"partition_key": "PK", "sort_key": "SK"}}}
    return {
        "version": 1,
        "source": {"database": DATABASE},
        "target": tgt,
        "defaults": {"page_size": page_size},
        "tables": [entry],
    }


def one_run(info, target: str, path: str, page_size: int, endpoint: str | None) -> dict:
    from sluice.local.run import run_local

    target_db = f"{DATABASE}_copy_{path}"
    sql(info, f"DROP DATABASE IF EXISTS `{target_db}`")
    saved = dict(os.environ)
    try:
        url = f"mysql://{info.user}:{info.password}@{info.host}:{info.port}"
        os.environ.update(SLUICE_SOURCE_URL=url, SLUICE_TARGET_URL=url)
        if endpoint:
            os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        with tempfile.TemporaryDirectory() as tmp:
            doc = Path(tmp) / "contract.json"
            doc.write_text(json.dumps(contract(target, path, page_size, target_db)))
            started = time.perf_counter()
            summary = run_local(
                doc, state_dir=Path(tmp) / "state", out=io.StringIO(), err=io.StringIO()
            )
            seconds = time.perf_counter() - started
    finally:
        os.environ.clear()
        os.environ.update(saved)
        sql(info, f"DROP DATABASE IF EXISTS `{target_db}`")
    t = summary["tables"][data.TABLE]
    if not summary["ok"] or t["path"] != path:
        raise SystemExit(f"bench.bulk: {target}/{path} run failed: {summary['verdict']}")
    return {
        "target": target,
        "path": path,
        "rows": t["loaded"],
        "pages": t["pages"],
        "seconds": round(seconds, 2),
        "rows_per_second": round(t["loaded"] / seconds),
        "pages_seconds": t["seconds"],
        "pages_rows_per_second": t["rows_per_second"],
    }


def render(results: list[dict], meta: dict) -> str:
    lines = [
        BEGIN,
        "",
        "## Bulk path (Glue job on local PySpark) vs Lambda path",
        "",
        f"- date: {meta['date']}; command: `{meta['command']}`",
        f"- table: {meta['rows']:,} rows of the bench table (bench/data.py), pages of "
        f"{meta['page_size']:,} rows; Spark local[2] (the machine's 2 cores), session start-up "
        f"{meta['spark_start']:.1f} s before the runs (not in the figures)",
        "- each figure is a whole `sluice run --local` (plan, pages, verification); 'pages' is "
        "the span from the first page started to the last loaded",
        NOTE,
        "",
        "| target | path | rows | seconds | rows/s | pages s | pages rows/s | bulk vs lambda |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    by = {(r["target"], r["path"]): r for r in results}
    for r in results:
        base = by.get((r["target"], "lambda"))
        ratio = f"{r['rows_per_second'] / base['rows_per_second']:.2f}x" if base else "-"
        lines.append(
            f"| {r['target']} | {r['path']} | {r['rows']:,} | {r['seconds']:.2f} | "
            f"{r['rows_per_second']:,} | {r['pages_seconds']:.2f} | "
            f"{(r['pages_rows_per_second'] or 0):,} | {ratio if r['path'] == 'bulk' else ''} |"
        )
    lines += ["", END]
    return "\n".join(lines) + "\n"


def write_results(block: str) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=50_000)
    parser.add_argument("--targets", default="mysql,dynamodb")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    info = server()
    ensure_server(info)
    log(f"bench.bulk: creating {args.rows:,} rows in {DATABASE}")
    data.create(info, DATABASE, args.rows)
    from sluice.bulk_spark import local_session

    started = time.perf_counter()
    local_session()
    spark_start = time.perf_counter() - started
    results = []
    try:
        for target in args.targets.split(","):
            for path in ("lambda", "bulk"):
                log(f"bench.bulk: {target} via the {path} path ...")
                if target == "dynamodb":
                    with NullDynamo() as null:
                        r = one_run(info, target, path, args.page_size, null.url)
                else:
                    r = one_run(info, target, path, args.page_size, None)
                log(f"  {r['seconds']:.2f} s, {r['rows_per_second']:,} rows/s")
                results.append(r)
    finally:
        sql(info, f"DROP DATABASE IF EXISTS `{DATABASE}`")
    command = (
        "python -m bench.bulk"
        + (f" --rows {args.rows}" if args.rows != 1_000_000 else "")
        + (f" --page-size {args.page_size}" if args.page_size != 50_000 else "")
        + (f" --targets {args.targets}" if args.targets != "mysql,dynamodb" else "")
        + (" --write" if args.write else "")
    )
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": command,
        "rows": args.rows,
        "page_size": args.page_size,
        "spark_start": spark_start,
    }
    block = render(results, meta)
    print(block)
    if args.write:
        write_results(block)


if __name__ == "__main__":
    main()
