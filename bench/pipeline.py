"""One `sluice run --local` in this process, for the benchmark to time from outside.

    python -m bench.pipeline CONTRACT STATE_DIR

Prints one JSON line: the run's summary plus this process's CPU seconds and peak RSS.
"""

from __future__ import annotations

import io
import json
import os
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

    started, cpu = time.perf_counter(), time.process_time()
    summary = run_local(
        contract,
        as_json=True,
        state_dir=Path(state_dir),
        out=io.StringIO(),
        workers=os.environ.get("SLUICE_LOCAL_WORKERS", "processes"),
    )
    summary["bench"] = {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "max_rss_mb": status_mb("VmHWM"),
    }
    print(json.dumps(summary, default=str), flush=True)


if __name__ == "__main__":
    main()
