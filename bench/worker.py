"""One stage on one page in a fresh process, as a Lambda worker runs it; prints its peak RSS.

    python -m bench.worker extract SRC_DB PAGE_SIZE OUT
    python -m bench.worker transform-mysql IN OUT CONTRACT
    python -m bench.worker transform-dynamodb IN OUT CONTRACT
    python -m bench.worker load-mysql IN DST_DB
    python -m bench.worker load-dynamodb IN ENDPOINT
    python -m bench.worker all [--page-size N ...]   # every stage, on a table it generates

Transform and load run sluice.stages' own code minus S3 and the manifest (a slice of the page
at a time); extract and the MySQL transform, bench.calls'. Staged pages travel between the
steps as files (S3 objects on AWS). Prints one JSON line:
rows, seconds, RSS after imports and peak RSS (VmHWM), in MB. `all` generates the bench table
(as many rows as the largest page), runs each stage in a fresh process per page size, as
`make bench` does (bench.run._workers), prints a table and drops its databases.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def status_mb(field: str) -> float:
    """A /proc/self/status figure in MB: VmRSS now, or VmHWM, the peak RSS of this process.

    Not ru_maxrss: Linux carries the forking parent's peak across exec into it.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_all(argv: list[str]) -> None:
    """Every stage in a fresh process on one page of each size; a table of peak RSS."""
    import argparse
    import os
    import tempfile

    from . import data
    from .common import ensure_server, log, server
    from .endpoint import NullDynamo
    from .run import Databases, _workers

    p = argparse.ArgumentParser(prog="python -m bench.worker all")
    p.add_argument(
        "--page-size", type=int, action="append", help="rows in the page (repeatable; 200000)"
    )
    sizes = p.parse_args(argv).page_size or [200_000]
    for k, v in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}.items():
        os.environ.setdefault(k, v)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    info = server()
    os.environ.setdefault("SLUICE_MYSQL_URL", f"mysql://{info.user}@{info.host}:{info.port}")
    ensure_server(info)
    dbs = Databases(info)
    rows = []
    try:
        src = dbs.name("src")
        log(f"worker: generating {max(sizes):,} rows in {src} ...")
        data.create(info, src, max(sizes))
        with NullDynamo() as nd, tempfile.TemporaryDirectory(prefix="sluice-worker-") as tmp:
            for size in sizes:
                rows += [(size, r) for r in _workers(info, dbs, src, nd.url, size, tmp)]
    finally:
        dbs.drop_all()
    print("| page rows | stage | seconds | RSS after imports MB | peak RSS MB |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for size, r in rows:
        print(
            f"| {size:,} | {r['stage']} | {r['seconds']:.2f} | "
            f"{r['rss_after_imports_mb']:.0f} | {r['peak_rss_mb']:.0f} |"
        )


def main() -> None:
    stage, args = sys.argv[1], sys.argv[2:]
    if stage == "all":
        run_all(args)
        return
    import os

    import boto3  # noqa: F401 - imported before the baseline RSS, as a Lambda's init does
    from sluice import db, source, stages, staging, transform
    from sluice.contract import load_document, parse
    from sluice.keys import cut_pages
    from sluice.targets import dynamodb as ddb_target
    from sluice.targets import mysql as mysql_target

    from . import calls
    from .data import TABLE

    info = db.parse_url(os.environ["SLUICE_MYSQL_URL"])
    base = status_mb("VmRSS")
    started = time.perf_counter()
    # What sluice.stages does with the page, minus S3 and the manifest: transform and load
    # hold a slice of it at a time (stages.SLICE_ROWS).
    if stage == "extract":
        database, page_size, out = args[0], int(args[1]), args[2]
        raw = db.connect(info.with_database(database), raw=True)
        table = source.introspect(raw, database, only=[TABLE])[TABLE]
        first = cut_pages(raw, database, TABLE, ["id"], page_size)[0]
        started = time.perf_counter()
        body, rows = calls.extract(
            raw, database, table, ["id"], source.decode_key(first.lo), source.decode_key(first.hi)
        )
        Path(out).write_bytes(body)
    elif stage == "transform-mysql":
        body, out = Path(args[0]).read_bytes(), args[1]
        data, rows = calls.transform_mysql(body, parse(load_document(args[2])).table(TABLE))
        Path(out).write_bytes(data)
    elif stage == "transform-dynamodb":
        body, out = Path(args[0]).read_bytes(), args[1]
        contract = parse(load_document(args[2]))
        spec = contract.table(TABLE)
        stages._staged_sum(body)  # the stage checks the object against the extract's sum

        def plan_of(schema):
            kinds = transform.page_kinds(schema.empty_table())
            return transform.item_plan(contract, spec, schema.names, kinds)

        items = stages._page_items(body, plan_of)
        Path(out).write_bytes(items.body)
        Path(out + ".keys").write_bytes(items.keys)
        rows = items.n
    elif stage == "load-mysql":
        body, database = Path(args[0]).read_bytes(), args[1]
        conn = db.connect(info.with_database(database), local_infile=True)
        key = ["id"]
        found, in_key_order = stages._staged_sum(body, key)
        rows, rejected = mysql_target.load_page_slices(
            conn,
            database,
            TABLE,
            staging.arrow_schema_of(body),
            lambda: staging.iter_arrow(body, stages.SLICE_ROWS),
            key,
        )
        stages._rows_written_sum(body, key, rejected.keys, found, in_key_order)
    elif stage == "load-dynamodb":
        body, endpoint = Path(args[0]).read_bytes(), args[1]
        found = stages._staged_lines_sum(body)
        writer, key_names, rows, refused = calls.stage_writer(endpoint), ["PK", "SK"], 0, []
        for lines in staging.iter_gunzip_lines(body, stages.SLICE_ROWS):
            n, rejected = ddb_target.write_page_items(writer, "bench", lines, key_names)
            rows, refused = rows + n, refused + rejected.keys
        stages._lines_written_sum(body, key_names, refused, found)
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    peak = status_mb("VmHWM")
    doc = {
        "stage": stage,
        "rows": rows,
        "seconds": time.perf_counter() - started,
        "rss_after_imports_mb": base,
        "peak_rss_mb": peak,
    }
    print(json.dumps(doc), flush=True)


if __name__ == "__main__":
    main()
