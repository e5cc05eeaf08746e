"""`make bench`: baselines and sluice timed side by side on one generated table.

    .venv/bin/python -m bench.run [--rows N] [--page-size N] ...

Generates the table in MariaDB, times mydumper + myloader, mysqldump | mysql and LOAD DATA,
then sluice's local pipeline into MySQL and into a null DynamoDB endpoint, each stage on its
own, the DynamoDB writer beside boto3's batch_writer, a worker's peak RSS, the estimate's CPU
assumption beside the measured rates, and with --planner-rows the planner. Prints the
figures and writes them to bench/RESULTS.md and bench/results.png. Every database it makes is
dropped at the end. Speed is reported here, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from sluice.contract import DEFAULT_PAGE_SIZE
from sluice.local.runtime import choose_workers

from . import baselines, data, machine, planner, report, stages
from .common import PY, ROOT, ensure_server, log, server, sql, timed
from .endpoint import NullDynamo


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated table")
    p.add_argument("--page-size", type=int, default=50_000, help="sluice's page size")
    p.add_argument("--stage-pages", type=int, default=6, help="pages measured per stage")
    p.add_argument(
        "--batch-writer-rows", type=int, default=100_000, help="items fed to batch_writer"
    )
    p.add_argument(
        "--worker-page-size",
        type=int,
        default=200_000,
        help="page of the peak-RSS worker (200,000: the largest a contract allows)",
    )
    p.add_argument("--threads", type=int, default=2, help="mydumper/myloader threads")
    p.add_argument(
        "--planner-rows",
        type=int,
        default=0,
        help="also time the planner (bench/planner.py) on a sparse-key table and a "
        "composite-key one of this many rows each, e.g. 10000000 (0: skip)",
    )
    p.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    p.add_argument("--chart", default=str(ROOT / "bench" / "results.png"))
    p.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    return p.parse_args(argv)


class Databases:
    """Every database the run makes carries one prefix and is dropped at the end."""

    def __init__(self, info):
        self.info = info
        self.prefix = f"sluice_bench_{os.getpid()}_"

    def name(self, what: str) -> str:
        return self.prefix + what

    def drop(self, name: str) -> None:
        sql(self.info, f"DROP DATABASE IF EXISTS `{name}`")

    def drop_all(self) -> None:
        ensure_server(self.info)
        like = self.prefix.replace("_", "\\_") + "%"
        for (name,) in sql(self.info, f"SHOW DATABASES LIKE '{like}'"):
            self.drop(name)


def main(argv=None) -> int:
    args = parse_args(argv)
    for k, v in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(k, v)
    info = server()
    os.environ.setdefault("SLUICE_MYSQL_URL", f"mysql://{info.user}@{info.host}:{info.port}")
    ensure_server(info)
    dbs = Databases(info)
    pid = machine.server_pid(info)
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()[0]
    results: dict = {"args": vars(args), "end_to_end": [], "notes": []}
    if pid is None:
        results["notes"].append(
            "server CPU not measured (reads 0): the server's pid file is not readable here and "
            "this machine runs no mariadbd, or more than one"
        )
    try:
        # mydumper first: describe() runs `mydumper --version`, which fails when it is missing.
        if note := baselines.ensure_mydumper():
            results["notes"].append(note)
        results["machine"] = machine.describe(info)
        src = dbs.name("src")
        log(f"bench: generating {args.rows:,} rows in {src} ...")
        with timed() as t:
            data.create(info, src, args.rows)
        results["table"] = {**data.stats(info, src), "seconds": t.wall}
        rows = results["table"]["rows"]
        e2e = results["end_to_end"]

        def record(name, wall, cpu, srv, note="", **extra):
            e2e.append(
                {"name": name, "seconds": wall, "rows_per_second": rows / wall, "client_cpu": cpu}
                | {"server_cpu": srv, "note": note, **extra}
            )
            log(f"bench:   {name}: {wall:.2f} s, {rows / wall:,.0f} rows/s")

        # ------------------------------------------------------------ baselines
        if not results["notes"]:
            ensure_server(info)
            log(f"bench: mydumper + myloader ({args.threads} threads) ...")
            dst = dbs.name("mydumper")
            s0 = machine.server_cpu_seconds(pid)
            t_dump, t_load = baselines.mydumper_myloader(info, src, dst, args.threads)
            srv = machine.server_cpu_seconds(pid) - s0
            _check(info, dst, rows, "myloader")
            dbs.drop(dst)
            record(
                "mydumper + myloader",
                t_dump.wall + t_load.wall,
                t_dump.child_cpu + t_load.child_cpu,
                srv,
                f"{args.threads} threads, chunks of 100k rows; dump {t_dump.wall:.2f} s + "
                f"load {t_load.wall:.2f} s, one after the other"
                + (
                    "; the load's first try ended in a myloader deadlock (server CPU includes it)"
                    if t_load.extra["retried"]
                    else ""
                ),
                baseline=True,
            )
        ensure_server(info)
        log("bench: mysqldump | mysql ...")
        dst = dbs.name("mysqldump")
        s0 = machine.server_cpu_seconds(pid)
        t = baselines.mysqldump_mysql(info, src, dst)
        srv = machine.server_cpu_seconds(pid) - s0
        _check(info, dst, rows, "mysqldump | mysql")
        dbs.drop(dst)
        record("mysqldump | mysql", t.wall, t.child_cpu, srv, "--single-transaction --quick")

        with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
            tsv = os.path.join(tmp, "orders.tsv")
            baselines.export_tsv(info, src, tsv)
            for fast in (False, True):
                dst = dbs.name("loaddata")
                log(f"bench: LOAD DATA LOCAL INFILE{' (unique_checks=0)' if fast else ''} ...")
                s0 = machine.server_cpu_seconds(pid)
                t = baselines.load_data(info, dst, tsv, fast_session=fast)
                srv = machine.server_cpu_seconds(pid) - s0
                _check(info, dst, rows, "LOAD DATA")
                dbs.drop(dst)
                record(
                    "LOAD DATA LOCAL INFILE"
                    + (" (unique_checks, foreign_key_checks off)" if fast else ""),
                    t.wall,
                    t.cpu,
                    srv,
                    "the whole table in one statement, file already on disk (load only)",
                )

            # -------------------------------------------------------- sluice, end to end
            # As `sluice run --local` chooses (--workers auto), then the other way.
            chosen = choose_workers("auto")
            other = "threads" if chosen == "processes" else "processes"
            for workers in (chosen, other):
                summary, srv = _into_mysql(info, dbs, pid, tmp, src, rows, workers, args.page_size)
                record(
                    "sluice local: MySQL -> MySQL"
                    + ("" if workers == chosen else f" (--workers {workers})"),
                    summary["bench"]["wall"],
                    summary["bench"]["cpu_seconds"],
                    srv,
                    _mode(workers) + _phases(summary),
                    sluice=True,
                    verdict=summary["verdict"],
                    peak_rss_mb=summary["bench"]["max_rss_mb"],
                )
            results["bound"] = _fixed_cost(info, dbs, pid, tmp, chosen, args.page_size)
            with NullDynamo() as nd:
                doc = stages.contract_doc(
                    "dynamodb", src, endpoint=nd.url, page_size=args.page_size
                )
                log("bench: sluice run --local, MySQL -> DynamoDB (null endpoint) ...")
                s0 = machine.server_cpu_seconds(pid)
                e0 = nd.stats()
                summary = _pipeline(doc, tmp, "dynamodb", chosen)
                srv = machine.server_cpu_seconds(pid) - s0
                e1 = nd.stats()
                record(
                    "sluice local: MySQL -> DynamoDB (null endpoint)",
                    summary["bench"]["wall"],
                    summary["bench"]["cpu_seconds"],
                    srv,
                    _mode(chosen) + "items to the bench's null endpoint "
                    f"({e1['cpu_seconds'] - e0['cpu_seconds']:.1f} CPU s of its own); "
                    + _phases(summary),
                    sluice=True,
                    verdict=summary["verdict"],
                    peak_rss_mb=summary["bench"]["max_rss_mb"],
                )

                # ---------------------------------------------------- stages, writer
                ensure_server(info)
                st = stages.measure(
                    info,
                    src,
                    dbs.name("stages"),
                    nd.url,
                    page_size=args.page_size,
                    pages=args.stage_pages,
                    batch_writer_rows=args.batch_writer_rows,
                )
                dbs.drop(dbs.name("stages"))
                results["stages"] = {
                    k: {
                        "name": f.name,
                        "rows": f.rows,
                        "wall": f.wall,
                        "cpu": f.cpu,
                        "per_second": f.per_second,
                        "per_cpu_second": f.per_cpu_second,
                    }
                    for k, f in st.figures.items()
                }
                results["bytes_per_row"] = st.bytes_per_row
                results["estimate_cpu"] = report.estimate_cpu(results["stages"])

                # ---------------------------------------------------- worker RSS
                ensure_server(info)
                results["workers"] = _workers(info, dbs, src, nd.url, args.worker_page_size, tmp)
        if args.planner_rows:
            dbs.drop(src)  # room in the buffer pool for the planner's tables
            measures = planner.run(
                info, args.planner_rows, [DEFAULT_PAGE_SIZE, 200_000], args.planner_rows
            )
            results["planner"] = planner.to_dicts(measures)
    finally:
        log("bench: dropping the benchmark's databases ...")
        dbs.drop_all()
    results["date"] = started.strftime("%Y-%m-%d %H:%M UTC")
    results["load_average"] = (load_before, os.getloadavg()[0])
    results["seconds"] = (dt.datetime.now(dt.UTC) - started).total_seconds()
    results["command"] = os.environ.get("SLUICE_BENCH_COMMAND") or " ".join(
        shlex.quote(a) for a in [".venv/bin/python", "-m", "bench.run", *sys.argv[1:]]
    )
    text = report.markdown(results)
    print(text)
    if not args.no_write:
        report.write_results(Path(args.results), text)
        report.chart(results, Path(args.chart))
        (Path(args.results).with_suffix(".json")).write_text(json.dumps(results, indent=2))
        log(f"bench: wrote {args.results}, {args.chart}")
    return 0


def _phases(summary: dict) -> str:
    """How much of a local run moved pages (first extract to last load) and its peak RSS."""
    t = summary["tables"][data.TABLE]
    b = summary["bench"]
    text = (
        f"pages moved in {t['seconds']:.1f} s ({t['loaded'] / t['seconds']:,.0f} rows/s), "
        "the rest is start-up, plan, polling and verify; "
    )
    if b["workers"] == "threads":
        return text + f"peak RSS {b['max_rss_mb']:.0f} MB"
    return text + (
        f"client CPU: runtime {b['runtime_cpu_seconds']:.1f} s + workers "
        f"{b['workers_cpu_seconds']:.1f} s; peak RSS: runtime {b['max_rss_mb']:.0f} MB, "
        f"largest worker {b['worker_max_rss_mb']:.0f} MB"
    )


def _check(info, database: str, rows: int, what: str) -> None:
    got = data.count(info, database)
    if got != rows:
        raise RuntimeError(f"bench: {what} left {got} rows in {database}, expected {rows}")


def _mode(workers: str) -> str:
    if workers == "processes":
        return (
            "stage consumers in worker processes (2 extract, 1 transform, 2 load), S3, SQS "
            "and Step Functions (moto) in the runtime's process; "
        )
    return "every stage in threads of the one runtime process, beside moto; "


# Rows of the run that shows what any run costs whatever its size (_fixed_cost).
FIXED_COST_ROWS = 1_000


def _into_mysql(
    info, dbs, pid, tmp: str, src: str, rows: int, workers: str, page_size: int, label: str = ""
) -> tuple[dict, float]:
    """sluice's local run of `src` into a new MySQL database, checked and dropped after: its
    summary and the server's CPU seconds over it."""
    ensure_server(info)
    dst = dbs.name("_".join(filter(None, ["sluice", label])))
    doc = stages.contract_doc("mysql", src, dst=dst, page_size=page_size)
    log(f"bench: sluice run --local --workers {workers}, MySQL -> MySQL, {rows:,} rows ...")
    s0 = machine.server_cpu_seconds(pid)
    summary = _pipeline(doc, tmp, "mysql", workers, label=label)
    srv = machine.server_cpu_seconds(pid) - s0
    _check(info, dst, rows, f"sluice MySQL -> MySQL ({rows:,} rows)")
    dbs.drop(dst)
    return summary, srv


def _fixed_cost(info, dbs, pid, tmp: str, workers: str, page_size: int) -> dict:
    """What any sluice run costs: the MySQL -> MySQL run over FIXED_COST_ROWS rows (start-up,
    the emulated stack, plan, one page, verify, one after another), for the report's bound."""
    src = dbs.name("fixed_src")
    data.create(info, src, FIXED_COST_ROWS)
    summary, srv = _into_mysql(
        info, dbs, pid, tmp, src, FIXED_COST_ROWS, workers, page_size, "fixed"
    )
    dbs.drop(src)
    b = summary["bench"]
    return {
        "rows": FIXED_COST_ROWS,
        "seconds": b["wall"],
        "client_cpu": b["cpu_seconds"],
        "server_cpu": srv,
        "workers": workers,
    }


def _pipeline(doc: dict, tmp: str, kind: str, workers: str, label: str = "") -> dict:
    """`sluice run --local --workers W` of `doc` in a child process; its summary, timed
    from here."""
    name = "-".join(filter(None, [kind, workers, label]))
    path = Path(tmp) / f"contract-{name}.json"
    path.write_text(json.dumps(doc, indent=2))
    with timed() as t:
        p = subprocess.run(
            [PY, "-m", "bench.pipeline", str(path), str(Path(tmp) / f"run-{name}")],
            cwd=ROOT,
            env={**os.environ, "SLUICE_LOCAL_WORKERS": workers},
            stdout=subprocess.PIPE,
        )
    if p.returncode:
        raise RuntimeError(f"bench: sluice run --local ({kind}) exited {p.returncode}")
    summary = json.loads(p.stdout.decode().strip().splitlines()[-1])
    if not summary.get("ok"):
        raise RuntimeError(f"bench: sluice run --local ({kind}) failed: {summary.get('verdict')}")
    summary["bench"]["wall"] = t.wall
    return summary


def _workers(info, dbs: Databases, src: str, endpoint: str, page_size: int, tmp: str) -> list:
    """Each stage on one page of `page_size` rows in a fresh process: peak RSS per stage."""
    log(f"bench: worker peak RSS, one page of {page_size:,} rows per stage ...")
    dst = dbs.name("worker")
    sql(info, f"CREATE DATABASE `{dst}`")
    sql(info, data.DDL, database=dst)
    t = Path(tmp)
    mysql_c, ddb_c = t / "worker-mysql.json", t / "worker-ddb.json"
    mysql_c.write_text(json.dumps(stages.contract_doc("mysql", src, dst=dst, page_size=page_size)))
    ddb_c.write_text(
        json.dumps(stages.contract_doc("dynamodb", src, endpoint=endpoint, page_size=page_size))
    )
    steps = [
        ["extract", src, str(page_size), str(t / "page.extracted")],
        ["transform-mysql", str(t / "page.extracted"), str(t / "page.mysql"), str(mysql_c)],
        ["transform-dynamodb", str(t / "page.extracted"), str(t / "page.ddb"), str(ddb_c)],
        ["load-mysql", str(t / "page.mysql"), dst],
        ["load-dynamodb", str(t / "page.ddb"), endpoint],
    ]
    out = []
    for step in steps:
        p = subprocess.run(
            [PY, "-m", "bench.worker", *step], cwd=ROOT, stdout=subprocess.PIPE, check=True
        )
        out.append(json.loads(p.stdout.decode().strip().splitlines()[-1]))
    dbs.drop(dst)
    return out


if __name__ == "__main__":
    sys.exit(main())
