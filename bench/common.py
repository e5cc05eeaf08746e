"""What every part of the benchmark shares: the server, timing, and running commands."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
from sluice.db import ConnInfo, connect, parse_url

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def server() -> ConnInfo:
    """The MariaDB/MySQL server of `.sluice/mysql.env` (SLUICE_MYSQL_URL)."""
    url = os.environ.get("SLUICE_MYSQL_URL")
    if not url:
        env = ROOT / ".sluice" / "mysql.env"
        for line in env.read_text().splitlines() if env.exists() else []:
            if line.startswith("SLUICE_MYSQL_URL="):
                url = line.split("=", 1)[1].strip()
    if not url:
        raise SystemExit("bench: SLUICE_MYSQL_URL is not set (run scripts/bootstrap.sh)")
    return parse_url(url).with_database(None)


def ensure_server(info: ConnInfo) -> None:
    """Start the server again if another check stopped it (scripts/ensure-mariadb.sh)."""
    try:
        connect(info).close()
        return
    except Exception:  # any failure to connect: let the script bring it back
        pass
    subprocess.run(
        [str(ROOT / "scripts" / "ensure-mariadb.sh"), str(ROOT / ".sluice" / "mysql.env")],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def client_args(info: ConnInfo) -> list[str]:
    """Connection options of the mysql/mysqldump/mydumper command-line clients."""
    return ["-h", info.host, "-P", str(info.port), "-u", info.user]


def client_env(info: ConnInfo) -> dict[str, str]:
    """MYSQL_PWD keeps a password out of the process list."""
    env = dict(os.environ)
    if info.password:
        env["MYSQL_PWD"] = info.password
    return env


def sql(info: ConnInfo, *statements: str, database: str | None = None, params=None, **kw) -> list:
    """Run statements on a fresh connection; the last one's rows (`params` bind the last)."""
    conn = pymysql.connect(
        host=info.host,
        port=info.port,
        user=info.user,
        password=info.password,
        database=database,
        charset="utf8mb4",
        autocommit=True,
        **kw,
    )
    try:
        with conn.cursor() as cur:
            rows: list = []
            for i, s in enumerate(statements):
                cur.execute(s, params if i == len(statements) - 1 else None)
                rows = list(cur.fetchall())
            return rows
    finally:
        conn.close()


@dataclass
class Timing:
    """Wall and CPU seconds of one measured step (CPU: this process, and its children)."""

    wall: float = 0.0
    cpu: float = 0.0
    child_cpu: float = 0.0
    extra: dict = field(default_factory=dict)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@contextmanager
def timed() -> Iterator[Timing]:
    t = Timing()
    w, c, cc = time.perf_counter(), time.process_time(), _children_cpu()
    try:
        yield t
    finally:
        t.wall = time.perf_counter() - w
        t.cpu = time.process_time() - c
        t.child_cpu = _children_cpu() - cc


def run(cmd: list[str] | str, *, env=None, shell: bool = False, cwd=None) -> None:
    """Run a command; fail loudly with its output when it fails."""
    p = subprocess.run(
        cmd,
        env=env,
        shell=shell,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        executable="/bin/bash" if shell else None,
    )
    if p.returncode:
        raise RuntimeError(f"bench: {cmd!r} exited {p.returncode}:\n{p.stdout.decode()[-2000:]}")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
