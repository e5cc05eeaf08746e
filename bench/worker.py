"""One stage on one page in a fresh process, as a Lambda worker runs it; prints its peak RSS.

    python -m bench.worker extract SRC_DB PAGE_SIZE OUT
    python -m bench.worker transform-mysql IN OUT CONTRACT
    python -m bench.worker transform-dynamodb IN OUT CONTRACT
    python -m bench.worker load-mysql IN DST_DB
    python -m bench.worker load-dynamodb IN ENDPOINT

Staged pages travel between the steps as files (S3 objects on AWS). Prints one JSON line:
rows, seconds, RSS after imports and peak RSS (VmHWM), in MB.
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


def main() -> None:
    stage, args = sys.argv[1], sys.argv[2:]
    import os

    import boto3  # noqa: F401 - imported before the baseline RSS, as a Lambda's init does
    from sluice import db, source
    from sluice.contract import load_document, parse
    from sluice.keys import cut_pages

    from . import calls
    from .data import TABLE

    info = db.parse_url(os.environ["SLUICE_MYSQL_URL"])
    base = status_mb("VmRSS")
    started = time.perf_counter()
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
    elif stage in ("transform-mysql", "transform-dynamodb"):
        body, out = Path(args[0]).read_bytes(), args[1]
        contract = parse(load_document(args[2]))
        spec = contract.table(TABLE)
        if stage == "transform-mysql":
            data, rows = calls.transform_mysql(body, spec)
        else:
            data, rows = calls.transform_dynamodb(body, contract, spec)
        Path(out).write_bytes(data)
    elif stage == "load-mysql":
        body, database = Path(args[0]).read_bytes(), args[1]
        conn = db.connect(info.with_database(database), local_infile=True)
        rows = calls.load_mysql(conn, database, TABLE, body)
    elif stage == "load-dynamodb":
        body, endpoint = Path(args[0]).read_bytes(), args[1]
        rows = calls.load_dynamodb(calls.stage_writer(endpoint), "bench", body)
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
