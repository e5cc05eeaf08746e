"""The DynamoDB transform alone, rows per CPU-second, on the bench table's pages.

    .venv/bin/python -m bench.ddb_transform [--rows 300000] [--page-size 50000] [--repeat 5]
        [--profile cprofile|pyinstrument] [--reference FILE]

Builds the bench table (bench/data.py), extracts its pages once as the extract stage does,
then times `to_dynamodb_items` over every page (`repeat` times, as the stages benchmark
measures it, and with `with_keys=True` as the transform stage calls it). Prints the median
and best rows per CPU-second of each; `--profile` profiles the with-keys runs instead.
"""

from __future__ import annotations

import argparse
import os
import statistics

from sluice import db, source, staging, transform
from sluice.contract import parse
from sluice.keys import cut_pages

from . import calls, data, stages
from .common import ensure_server, log, server, sql, timed


def _pages(rows: int, page_size: int) -> list:
    info = server()
    ensure_server(info)
    database = f"sluice_bench_{os.getpid()}_ddbt"
    data.create(info, database, rows)
    raw = db.connect(info.with_database(database), raw=True)
    try:
        table = source.introspect(raw, database, only=[data.TABLE])[data.TABLE]
        out = []
        for r in cut_pages(raw, database, data.TABLE, ["id"], page_size):
            lo, hi = source.decode_key(r.lo), source.decode_key(r.hi)
            body, _ = calls.extract(raw, database, table, ["id"], lo, hi)
            out.append(staging.read_arrow(body))
        return out
    finally:
        raw.close()
        sql(info, f"DROP DATABASE IF EXISTS `{database}`")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ddb_transform")
    p.add_argument("--rows", type=int, default=300_000)
    p.add_argument("--page-size", type=int, default=50_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--profile", choices=("cprofile", "pyinstrument"))
    p.add_argument("--reference", help="a transform.py to time beside the current one")
    args = p.parse_args(argv)
    pages = _pages(args.rows, args.page_size)
    doc = stages.contract_doc("dynamodb", "bench", endpoint="http://127.0.0.1:1", page_size=50_000)
    contract = parse(doc)
    spec = contract.table(data.TABLE)
    plans = [calls.item_plan(contract, spec, page) for page in pages]
    rows = sum(page.num_rows for page in pages)

    modules = {"": transform}
    if args.reference:
        from .ddb_golden import load_reference

        modules = {" (reference)": load_reference(args.reference), "": transform}

    def once(module, with_keys: bool) -> float:
        with timed() as t:
            for page, plan in zip(pages, plans, strict=True):
                module.to_dynamodb_items(page, plan, with_keys=with_keys)
        return t.cpu

    for module in modules.values():
        once(module, True)  # warm-up: imports, caches
    if args.profile == "cprofile":
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.repeat):
            once(transform, True)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return 0
    if args.profile == "pyinstrument":
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0005)
        prof.start()
        for _ in range(args.repeat):
            once(transform, True)
        prof.stop()
        print(prof.output_text(unicode=False, color=False, show_all=False))
        return 0
    for with_keys in (False, True):
        cpu: dict[str, list[float]] = {name: [] for name in modules}
        for _ in range(args.repeat):  # alternating, so that both see the same load
            for name, module in modules.items():
                cpu[name].append(once(module, with_keys))
        for name, times in cpu.items():
            rates = [rows / c for c in times]
            label = "to_dynamodb_items" + (" with_keys=True" if with_keys else "") + name
            print(
                f"{label:52s} {rows:,} rows x {args.repeat}: median "
                f"{statistics.median(rates):,.0f} rows/CPU-s, best {max(rates):,.0f}"
            )
    log(f"(pages of {args.page_size:,} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
