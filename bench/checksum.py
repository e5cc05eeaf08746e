"""What the page checksum costs beside the extract stage, on one page of bench rows.

    .venv/bin/python -m bench.checksum [--rows 200000] [--repeat 5]

Builds the bench table (bench/data.py) in a database of its own, then times on its one page:
extract as the stage did before checksums (read_page + staging.write_arrow), extract as it
is now (checksum.write_arrow: the same, summed as it streams), the checksum alone over the
page's batches, and the checksum of the page read back from its staged bytes (what transform
and load add). CPU seconds of this process (time.process_time); the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import os

from sluice import checksum, db, source, staging
from sluice.types import arrow_schema

from . import data
from .common import ensure_server, log, server, sql, timed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    info = server()
    ensure_server(info)
    name = f"sluice_bench_{os.getpid()}_checksum"
    try:
        log(f"bench: checksum: building {args.rows:,} rows in {name} ...")
        data.create(info, name, args.rows)
        raw = db.connect(info.with_database(name), raw=True)
        table = source.introspect(db.connect(info.with_database(name)), name, only=[data.TABLE])[
            data.TABLE
        ]
        schema = arrow_schema(table.columns)

        def read():
            return source.read_page(raw, name, table, ["id"], None, None)

        best: dict[str, float] = {}

        def keep(label: str, cpu: float) -> None:
            best[label] = min(cpu, best.get(label, cpu))

        for _ in range(args.repeat):
            with timed() as t:
                body, rows = staging.write_arrow(schema, read())
            keep("extract before (read_page + write_arrow)", t.cpu)
            with timed() as t:
                _, rows2, summed = checksum.write_arrow(schema, read())
            keep("extract now (read_page + write_arrow, summed)", t.cpu)
            batches = list(read())
            with timed() as t:
                s = checksum.PageSum(schema)
                for b in batches:
                    s.update(b)
                alone = s.hexdigest()
            keep("checksum alone (PageSum over the page's batches)", t.cpu)
            page = staging.read_arrow(body)
            with timed() as t:
                again = checksum.page_sum(page)
            keep("checksum of the staged page read back (transform, load)", t.cpu)
            assert rows == rows2 and summed == alone == again, "the sums disagree"
        print(f"page of {rows:,} rows ({len(body) / rows:.1f} staged bytes a row)")
        for label, cpu in best.items():
            print(f"  {label:<58} {cpu * 1000:8.1f} ms CPU  {rows / cpu:>12,.0f} rows/CPU-s")
        before = best["extract before (read_page + write_arrow)"]
        now = best["extract now (read_page + write_arrow, summed)"]
        alone = best["checksum alone (PageSum over the page's batches)"]
        print(
            f"  checksum alone = {alone / before:.1%} of extract's CPU; extract now "
            f"{rows / now:,.0f} rows/CPU-s (before {rows / before:,.0f})"
        )
    finally:
        sql(info, f"DROP DATABASE IF EXISTS `{name}`")


if __name__ == "__main__":
    main()
