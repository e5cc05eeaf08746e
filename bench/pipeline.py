"""One `sluice run --local` in this process, for the benchmark to time from outside.

    python -m bench.pipeline CONTRACT STATE_DIR

Prints one JSON line: the run's summary plus the CPU seconds of this process and of its worker
processes (the stage consumers, as `sluice run --local --workers auto` chooses: set
SLUICE_LOCAL_WORKERS to threads or processes to choose), and
the peak RSS of this process and of the largest worker.
"""

from __future__ import annotations

import io
import json
import os
import resource
import sys
import time

from .worker import status_mb


def main() -> None:
    contract, state_dir = sys.argv[1], sys.argv[2]
    url = os.environ["SLUICE_MYSQL_URL"]
    os.environ.setdefault("SLUICE_SOURCE_URL", url)
    os.environ.setdefault("SLUICE_TARGET_URL", url)
    from pathlib import Path

    from sluice.local.run import run_local
    from sluice.local.runtime import choose_workers

    workers = choose_workers(os.environ.get("SLUICE_LOCAL_WORKERS", "auto"))
    started = time.perf_counter()
    summary = run_local(
        contract,
        as_json=True,
        state_dir=Path(state_dir),
        out=io.StringIO(),
        workers=workers,
    )
    # All of this process's CPU, its imports included, as the wall time timed from outside.
    own = time.process_time()
    # The supervisor reaps its workers and is reaped by the runtime: their CPU is in here.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary["bench"] = {
        "seconds": time.perf_counter() - started,
        "workers": workers,
        "cpu_seconds": own + children.ru_utime + children.ru_stime,
        "runtime_cpu_seconds": own,
        "workers_cpu_seconds": children.ru_utime + children.ru_stime,
        "max_rss_mb": status_mb("VmHWM"),
        "worker_max_rss_mb": children.ru_maxrss / 1024,
    }
    print(json.dumps(summary, default=str), flush=True)


if __name__ == "__main__":
    main()
