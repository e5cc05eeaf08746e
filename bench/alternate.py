"""Two versions of Sluice side by side: `sluice run --local` of the bench table, alternating.

    python -m bench.alternate [--runs N] [--target mysql|dynamodb] [--rows N] TREE [TREE ...]

Each TREE is a checkout of this repository (`git worktree add /tmp/before COMMIT`, and `.`
for the working tree); its `layers/core` is put first on the child's PYTHONPATH, so the
child runs that tree's library while the bench's own code stays this one. The trees take
turns, N rounds, on the same source table (`sluice_bench_alternate_src`, made once and kept
for the next call), each run into a new target: a MySQL database made empty first, or a
fresh null DynamoDB endpoint. The order turns round every other round (A B, B A, ...), so no
tree always follows the same one, and each run waits for the server's own work left from the
run before (InnoDB flushing and purging the dropped target) to settle first. Taking turns
spreads the machine's drift over both sides; on 2 cores, runs of one tree still spread by
0.3-0.5 s or more, so compare the ranges, not one run.

For each run: wall seconds of the child process (start-up included), `run_local`'s seconds,
the child's CPU seconds (with its worker processes) and the database server's CPU seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from . import data, machine, stages
from .common import PY, ROOT, ensure_server, server, sql, timed
from .endpoint import NullDynamo

SOURCE, TARGET = "sluice_bench_alternate_src", "sluice_bench_alternate_dst"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trees", nargs="+", help="checkouts of this repository to compare")
    p.add_argument("--runs", type=int, default=3, help="rounds; each tree runs once a round")
    p.add_argument("--target", choices=("mysql", "dynamodb"), default="mysql")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--page-size", type=int, default=50_000)
    p.add_argument("--workers", choices=("threads", "processes"), default="threads")
    args = p.parse_args(argv)
    trees = [Path(t).resolve() for t in args.trees]
    for tree in trees:
        if not (tree / "layers" / "core" / "sluice").is_dir():
            raise SystemExit(f"bench.alternate: {tree} is not a checkout of this repository")
    info = server()
    os.environ.setdefault("SLUICE_MYSQL_URL", f"mysql://{info.user}@{info.host}:{info.port}")
    ensure_server(info)
    if data.rows_in(info, SOURCE) != args.rows:
        print(f"bench.alternate: generating {args.rows:,} rows in {SOURCE} ...", flush=True)
        data.create(info, SOURCE, args.rows)
    pid = machine.server_pid(info)
    runs: dict[Path, list[tuple[float, float, float, float]]] = {t: [] for t in trees}
    try:
        for round_ in range(args.runs):
            for tree in trees if round_ % 2 == 0 else trees[::-1]:
                figures = _run(info, pid, tree, args)
                runs[tree].append(figures)
                print(
                    f"{tree}: {figures[0]:.2f} s, run_local {figures[1]:.2f} s, "
                    f"client CPU {figures[2]:.2f} s, server CPU {figures[3]:.2f} s",
                    flush=True,
                )
    finally:
        sql(info, f"DROP DATABASE IF EXISTS `{TARGET}`")
    print()
    names = ("seconds", "run_local", "client CPU", "server CPU")
    for tree, figures in runs.items():
        columns = zip(*figures, strict=True)
        ranges = (f"{n} {min(c):.2f}-{max(c):.2f}" for n, c in zip(names, columns, strict=True))
        print(f"{tree}: " + ", ".join(ranges))
    return 0


def _run(info, pid: int, tree: Path, args) -> tuple[float, float, float, float]:
    sql(info, f"DROP DATABASE IF EXISTS `{TARGET}`", f"CREATE DATABASE `{TARGET}`")
    sql(info, data.DDL, database=TARGET)
    endpoint = NullDynamo() if args.target == "dynamodb" else contextlib.nullcontext()
    with tempfile.TemporaryDirectory(prefix="sluice-alternate-") as tmp, endpoint as nd:
        contract = Path(tmp) / "contract.json"
        doc = (
            stages.contract_doc("mysql", SOURCE, dst=TARGET, page_size=args.page_size)
            if nd is None
            else stages.contract_doc("dynamodb", SOURCE, endpoint=nd.url, page_size=args.page_size)
        )
        contract.write_text(json.dumps(doc))
        env = {
            **{k: v for k, v in os.environ.items() if k != "SLUICE_PROJECT_ROOT"},  # the tree's
            "PYTHONPATH": os.pathsep.join([str(tree / "layers" / "core"), str(ROOT)]),
            "SLUICE_LOCAL_WORKERS": args.workers,
        }
        _settle(pid)
        s0 = machine.server_cpu_seconds(pid)
        with timed() as t:
            done = subprocess.run(
                [PY, "-m", "bench.pipeline", str(contract), str(Path(tmp) / "state")],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                check=False,
            )
        srv = machine.server_cpu_seconds(pid) - s0
    if done.returncode:
        raise SystemExit(f"bench.alternate: {tree}'s run exited {done.returncode}")
    summary = json.loads(done.stdout.decode().strip().splitlines()[-1])
    if not summary.get("ok"):
        raise SystemExit(f"bench.alternate: {tree}'s run failed: {summary.get('verdict')}")
    bench = summary["bench"]
    return t.wall, bench["seconds"], bench["cpu_seconds"], srv


def _settle(pid: int | None, idle: float = 0.05, most: float = 20.0) -> None:
    """Wait until the server uses less than `idle` of a core over a quarter second (at most
    `most` seconds; its CPU is counted in ticks of 10 ms, so 0.05 allows one tick)."""
    deadline = time.monotonic() + most
    while time.monotonic() < deadline:
        before = machine.server_cpu_seconds(pid)
        time.sleep(0.25)
        if machine.server_cpu_seconds(pid) - before < idle * 0.25:
            return


if __name__ == "__main__":
    raise SystemExit(main())
