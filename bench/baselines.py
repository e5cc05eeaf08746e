"""The tools sluice is measured against: mydumper + myloader, mysqldump | mysql, LOAD DATA."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pymysql

from .common import Timing, client_args, client_env, log, run, sql, timed
from .data import DDL, TABLE


def ensure_mydumper() -> str | None:
    """Install Debian's mydumper (mydumper and myloader) when missing; None if impossible."""
    if shutil.which("mydumper") and shutil.which("myloader"):
        return None
    log("bench: installing mydumper (apt-get install -y mydumper) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "install", "-y", "-qq", "mydumper"],
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "mydumper"],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True)
        if cmd[1] == "install" and done.returncode == 0:
            return None
    return "mydumper could not be installed (apt-get install -y mydumper failed)"


def version(cmd: str) -> str:
    out = subprocess.run([cmd, "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else "?"


def mydumper_myloader(info, src: str, dst: str, threads: int = 2) -> tuple[Timing, Timing]:
    """Dump with mydumper (chunks of 100k rows, so both threads work on the one table) and
    restore with myloader into `dst`; returns the two timings."""
    pw = ["-p", info.password] if info.password else []
    with tempfile.TemporaryDirectory(prefix="sluice-bench-dump-") as out:
        dump = out + "/dump"
        with timed() as t_dump:
            run(
                ["mydumper", *client_args(info), *pw, "-B", src, "-T", TABLE, "-t", str(threads)]
                + ["-r", "100000", "-o", dump, "-v", "1"]
                # Other sessions' long queries (a test suite on the same server) are not the
                # dump's business: without this, mydumper aborts when one runs past 60 s.
                + ["--long-query-guard", "86400"]
            )
        for attempt in (1, 2):
            sql(info, f"DROP DATABASE IF EXISTS `{dst}`")
            try:
                with timed() as t_load:
                    run(
                        ["myloader", *client_args(info), *pw, "-d", dump, "-s", src, "-B", dst]
                        + ["-t", str(threads), "-o", "-v", "1"]
                    )
                break
            except RuntimeError as exc:
                # Its two threads' INSERTs into the one table can deadlock in InnoDB (a
                # `make bench` of 2026-11-26 died of it), and myloader gives up: the whole
                # restore is timed again, once, and the result says so.
                if attempt == 2 or "Deadlock found" not in str(exc):
                    raise
                log("bench:   myloader gave up on an InnoDB deadlock; restoring again")
        t_load.extra["retried"] = attempt > 1
        t_dump.extra["bytes"] = sum(
            os.path.getsize(os.path.join(dump, f)) for f in os.listdir(dump)
        )
    return t_dump, t_load


def mysqldump_mysql(info, src: str, dst: str) -> Timing:
    """`mysqldump --single-transaction --quick src orders | mysql dst` (one stream)."""
    sql(info, f"DROP DATABASE IF EXISTS `{dst}`", f"CREATE DATABASE `{dst}` CHARACTER SET utf8mb4")
    conn = " ".join(client_args(info))
    with timed() as t:
        run(
            f"set -o pipefail; mysqldump {conn} --single-transaction --quick {src} {TABLE}"
            f" | mysql {conn} {dst}",
            shell=True,
            env=client_env(info),
        )
    return t


def export_tsv(info, src: str, path: str) -> None:
    """The whole table as a LOAD DATA file, written by the server (not timed)."""
    os.chmod(os.path.dirname(path), 0o777)  # the server writes as its own user
    sql(info, f"SELECT * INTO OUTFILE '{path}' FROM `{TABLE}`", database=src)  # noqa: S608


def load_data(info, dst: str, path: str, *, fast_session: bool) -> Timing:
    """LOAD DATA LOCAL INFILE of the whole table into an empty copy, in one statement."""
    sql(
        info,
        f"DROP DATABASE IF EXISTS `{dst}`",
        f"CREATE DATABASE `{dst}` CHARACTER SET utf8mb4",
        f"USE `{dst}`",
        DDL,
    )
    conn = pymysql.connect(
        host=info.host,
        port=info.port,
        user=info.user,
        password=info.password,
        database=dst,
        charset="utf8mb4",
        local_infile=True,
        autocommit=True,
    )
    try:
        with conn.cursor() as cur:
            if fast_session:
                cur.execute("SET SESSION unique_checks = 0, foreign_key_checks = 0")
            with timed() as t:
                cur.execute(
                    f"LOAD DATA LOCAL INFILE %s INTO TABLE `{TABLE}` CHARACTER SET utf8mb4",
                    (path,),
                )
    finally:
        conn.close()
    return t
