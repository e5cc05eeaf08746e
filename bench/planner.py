"""The planner's speed: `sluice.keys.cut_pages` on a large table with sparse keys.

    .venv/bin/python -m bench.planner [--rows 10000000] [--page-size 10000 --page-size 200000]

Generates the benchmark's `orders` table (bench/data.py) with keys from -2^63 to 2^63-1 and
a gap of about 6e18 between its two halves, and a composite-key table, times `cut_pages` on
each at every page size, then counts the real rows of every page with its own range (one
COUNT a page) and checks that no page is empty, that every page but the last holds exactly
`page_size` rows, and that the pages add up to the table. Prints the figures; every database
it makes is dropped at the end. Speed is reported here, never asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict, dataclass

from sluice import db
from sluice.contract import DEFAULT_PAGE_SIZE
from sluice.keys import PageRange, cut_pages
from sluice.source import decode_key, range_predicate
from sluice.sql import q, qualified

from . import data
from .common import ensure_server, log, server, sql, timed

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# The key of row `seq` (1..N): the extremes at both ends, then two runs of sparse keys far
# apart, so a planner that divides the key space (instead of counting rows) would make empty
# and giant pages. Increasing in seq, so the table fills in key order.
SPARSE_KEY = (
    f"CASE WHEN seq = 1 THEN {INT64_MIN} WHEN seq = {{rows}} THEN {INT64_MAX} "
    "WHEN seq <= {rows} DIV 2 THEN CAST(seq AS SIGNED) * 3 - 3000000000000000000 "
    "ELSE 3000000000000000000 + CAST(seq AS SIGNED) * 7 END"
)
COMPOSITE = "accounts"
COMPOSITE_DDL = f"""
CREATE TABLE `{COMPOSITE}` (
  `region` VARCHAR(8) NOT NULL,
  `account` BIGINT NOT NULL,
  `balance` DECIMAL(14,2) NOT NULL,
  `name` VARCHAR(40) NOT NULL,
  PRIMARY KEY (`region`, `account`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""
REGIONS = ["ap", "eu-c", "eu-w", "sa", "us-e", "us-w"]
SHARES = [0.01, 0.1, 0.25, 0.5, 0.75, 1.0]  # where each region's rows end: uneven sizes


def composite_fill(rows: int) -> str:
    """Six regions of uneven size; in each, accounts from -2^63 to 2^63-1 with steps of
    about 9e18/rows between. Increasing in seq, so the table fills in key order."""
    ends = [max(1, int(rows * s)) for s in SHARES]
    region = " ".join(f"WHEN seq <= {e} THEN '{r}'" for r, e in zip(REGIONS, ends, strict=True))
    firsts = ", ".join(str(e + 1) for e in [0, *ends[:-1]])
    lasts = ", ".join(str(e) for e in ends)
    step = 9 * 10**18 // max(1, rows)
    return f"""
INSERT IGNORE INTO `{COMPOSITE}`
SELECT
  CASE {region} END,
  CASE WHEN seq IN ({firsts}) THEN {INT64_MIN} WHEN seq IN ({lasts}) THEN {INT64_MAX}
       ELSE CAST(seq AS SIGNED) * {step} - 4500000000000000000 END,
  (seq % 1000000) / 100,
  CONCAT('account ', seq)
FROM seq_1_to_{int(rows)}
"""  # noqa: S608 - constant identifiers and numbers


@dataclass
class Measure:
    table: str
    key: list[str]
    rows: int
    page_size: int
    seconds: float
    cpu: float
    pages: int
    min_rows: int
    max_rows: int
    mean_rows: float
    empty_pages: int
    wrong_size_pages: int
    counted: int
    count_seconds: float

    @property
    def ok(self) -> bool:
        return not self.empty_pages and not self.wrong_size_pages and self.counted == self.rows


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.planner", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000, help="rows of the sparse-key table")
    p.add_argument(
        "--composite-rows",
        type=int,
        default=None,
        help="rows of the composite-key table (default: --rows; 0 skips it)",
    )
    p.add_argument(
        "--page-size",
        type=int,
        action="append",
        help=f"page size to time (repeatable; default {DEFAULT_PAGE_SIZE:,}, the contract's "
        "default, and 200,000, the largest a contract allows)",
    )
    return p.parse_args(argv)


def create(info, database: str, rows: int, composite_rows: int) -> None:
    key = SPARSE_KEY.format(rows=int(rows))
    fill = data.FILL.format(rows=int(rows))
    if "5000000000 + seq * 3" not in fill:
        raise RuntimeError("bench: bench/data.py's key expression changed; update bench/planner")
    sql(
        info,
        f"DROP DATABASE IF EXISTS `{database}`",
        f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4",
    )
    statements = [
        data.DDL,
        "SET SESSION unique_checks = 0, foreign_key_checks = 0",
        fill.replace("5000000000 + seq * 3", key, 1),
        f"ANALYZE TABLE `{data.TABLE}`",
    ]
    if composite_rows:
        statements += [
            COMPOSITE_DDL,
            composite_fill(composite_rows),
            f"ANALYZE TABLE `{COMPOSITE}`",
        ]
    sql(info, *statements, database=database, read_timeout=3600, write_timeout=3600)


def measure(info, database: str, table: str, key: list[str], page_size: int) -> Measure:
    """Time cut_pages on a fresh connection, as the plan stage opens one, then count every
    page's rows with its own range."""
    raw = db.connect(info.with_database(database), raw=True, read_timeout=3600)
    try:
        with timed() as t:
            ranges = cut_pages(raw, database, table, key, page_size)
        with timed() as tc:
            counts = [_count(raw, database, table, key, r) for r in ranges]
            (total,) = sql(info, f"SELECT COUNT(*) FROM {qualified(database, table)}")[0]  # noqa: S608
    finally:
        raw.close()
    return Measure(
        table=table,
        key=key,
        rows=int(total),
        page_size=page_size,
        seconds=t.wall,
        cpu=t.cpu,
        pages=len(ranges),
        min_rows=min(counts, default=0),
        max_rows=max(counts, default=0),
        mean_rows=sum(counts) / len(counts) if counts else 0.0,
        empty_pages=sum(1 for c in counts if c == 0),
        wrong_size_pages=sum(1 for c in counts[:-1] if c != page_size)
        + (1 if counts and counts[-1] > page_size else 0),
        counted=sum(counts),
        count_seconds=tc.wall,
    )


def _count(raw, database: str, table: str, key: list[str], r: PageRange) -> int:
    where, params = range_predicate(key, decode_key(r.lo), decode_key(r.hi))
    with raw.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {qualified(database, table)} WHERE {where}", params)  # noqa: S608
        return int(cur.fetchone()[0])


def extremes(info, database: str, table: str, key: list[str]) -> tuple:
    cols = ", ".join(q(k) for k in key)
    first = sql(info, f"SELECT {cols} FROM {qualified(database, table)} ORDER BY {cols} LIMIT 1")  # noqa: S608
    desc = ", ".join(f"{q(k)} DESC" for k in key)
    last = sql(info, f"SELECT {cols} FROM {qualified(database, table)} ORDER BY {desc} LIMIT 1")  # noqa: S608
    return first[0], last[0]


def run(info, rows: int, page_sizes: list[int], composite_rows: int) -> list[Measure]:
    """Generate, measure and drop; the measurements, in order (what `bench.run` records)."""
    database = f"sluice_bench_{os.getpid()}_planner"
    out = []
    try:
        ensure_server(info)
        log(f"bench: planner: generating {rows:,} rows (+ {composite_rows:,} composite) ...")
        with timed() as t:
            create(info, database, rows, composite_rows)
        log(f"bench: planner: generated in {t.wall:.1f} s")
        tables = [(data.TABLE, ["id"])] + (
            [(COMPOSITE, ["region", "account"])] * bool(composite_rows)
        )
        for table, key in tables:
            lo, hi = extremes(info, database, table, key)
            log(f"bench: planner: {table} keys from {lo} to {hi}")
            for size in page_sizes:
                m = measure(info, database, table, key, size)
                log(
                    f"bench: planner: {table} ({', '.join(key)}) page {size:,}: "
                    f"{m.seconds:.2f} s, {m.pages:,} pages, rows/page min {m.min_rows:,} "
                    f"max {m.max_rows:,} mean {m.mean_rows:,.1f}, {m.empty_pages} empty, "
                    f"{'OK' if m.ok else 'WRONG'}"
                )
                out.append(m)
    finally:
        sql(info, f"DROP DATABASE IF EXISTS `{database}`")
    return out


def to_dicts(measures: list[Measure]) -> list[dict]:
    return [asdict(m) | {"ok": m.ok} for m in measures]


def markdown(measures: list[dict]) -> list[str]:
    """The planner's table (from `to_dicts`), for the report and for this module's output."""
    out = [
        "| table (key) | rows | page size | cut_pages s | client CPU s | pages | rows a page: "
        "min / max / mean | empty pages | pages but the last not of page size | rows counted |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for m in measures:
        counted = f"{m['counted']:,} {'✅' if m['counted'] == m['rows'] else '❌'}"
        out.append(
            f"| {m['table']} ({', '.join(m['key'])}) | {m['rows']:,} | {m['page_size']:,} | "
            f"{m['seconds']:.2f} | {m['cpu']:.2f} | {m['pages']:,} | {m['min_rows']:,} / "
            f"{m['max_rows']:,} / {m['mean_rows']:,.1f} | {m['empty_pages']} | "
            f"{m['wrong_size_pages']} | {counted} |"
        )
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = args.page_size or [DEFAULT_PAGE_SIZE, 200_000]
    composite = args.rows if args.composite_rows is None else args.composite_rows
    info = server()
    measures = run(info, args.rows, sizes, composite)
    print("\n".join(markdown(to_dicts(measures))))
    return 0 if all(m.ok for m in measures) else 1


if __name__ == "__main__":
    sys.exit(main())
