"""What the figures were measured on: machine, server and library versions."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

from .common import sql


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _ram_gib() -> float:
    with open("/proc/meminfo") as f:
        kb = int(f.readline().split()[1])
    return kb / 1024 / 1024


def server_pid(info) -> int | None:
    """The process of the server at `info`: the one its pid file names (`@@pid_file`), else
    the only mariadbd or mysqld here; None when it is not on this machine or cannot be told
    apart from another server's (its CPU then reads 0, and the bench says so)."""
    ((pid_file,),) = sql(info, "SELECT @@pid_file")
    try:
        return int(Path(pid_file).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    out = subprocess.run(["pidof", "mariadbd", "mysqld"], capture_output=True, text=True)
    pids = out.stdout.split()
    return int(pids[0]) if len(pids) == 1 else None


def server_cpu_seconds(pid: int | None) -> float:
    """The database server's user+system CPU so far (0 when it is not on this machine)."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _git() -> str:
    """The checkout measured: commit, and whether the work tree had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        ["git", "-C", str(root), "describe", "--always", "--dirty=+uncommitted changes"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "?"


def reference_loop() -> float:
    """CPU seconds of a fixed pure-Python loop: how fast this machine runs Python right now
    (a shared virtual machine's speed moves between runs)."""
    started, total = time.process_time(), 0
    for i in range(10_000_000):
        total += i
    return time.process_time() - started


def describe(info) -> dict[str, str]:
    ((ver, pool, flush, binlog),) = sql(
        info,
        "SELECT VERSION(), @@innodb_buffer_pool_size, @@innodb_flush_log_at_trx_commit, @@log_bin",
    )
    tools = {}
    for cmd in ("mydumper", "mysqldump"):
        out = subprocess.run([cmd, "--version"], capture_output=True, text=True)
        tools[cmd] = (
            (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else "-"
        )
    return {
        "sluice source": _git(),
        "cores (nproc)": str(os.cpu_count()),
        "Python reference loop": f"{reference_loop():.2f} CPU s (10M additions; the same "
        "machine gave 0.86 to 1.77 s between runs: compare ratios within a run)",
        "CPU": _cpu_model(),
        "RAM": f"{_ram_gib():.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "server": f"MariaDB/MySQL {ver} on the same machine (innodb_buffer_pool_size "
        f"{int(pool) // 2**20} MiB, innodb_flush_log_at_trx_commit {flush}, log_bin {binlog})",
        "Python": platform.python_version(),
        "pyarrow": version("pyarrow"),
        "PyMySQL": version("PyMySQL"),
        "boto3 / botocore": f"{version('boto3')} / {version('botocore')}",
        "moto": version("moto"),
        "mydumper": tools["mydumper"],
        "mysqldump": tools["mysqldump"],
    }
