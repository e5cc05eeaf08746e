"""The local runtime's worker processes (sluice.local.workers): a worker that cannot run is
reported at once, and the run fails with its name instead of waiting out its timeout."""

from __future__ import annotations

import os
import signal
import time

from sluice.local.consumer import Source
from sluice.local.runtime import project_root
from sluice.local.workers import WorkerPool, WorkerSpec


def _spec(function: str, code_uri: str) -> WorkerSpec:
    return WorkerSpec(
        root=str(project_root()),
        source=Source(
            queue="ExtractQueue",
            url="http://127.0.0.1:9/never-reached",
            arn="arn:aws:sqs:us-east-1:123456789012:never-reached",
            function=function,
            batch_size=1,
            report_failures=True,
            timeout=30,
        ),
        function_name=f"local-{function}",
        code_uri=code_uri,
        handler="app.lambda_handler",
        log=None,
    )


def test_a_worker_whose_handler_cannot_load_is_reported_by_name(capfd):
    counts = []
    pool = WorkerPool(lambda kind, key: counts.append((kind, key)))
    pool.start([_spec("ExtractFunction", "functions/no-such-function")], dict(os.environ))
    try:
        deadline = time.monotonic() + 30
        while not pool.exits and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pool.stop()
    assert pool.exits == ["ExtractFunction"]
    assert pool.failure() == "the local worker process of ExtractFunction ended on its own"
    assert counts == []  # it never took a message
    assert "no-such-function" in capfd.readouterr().err  # its traceback, for the user


def _stat(pid: int | str) -> list[str] | None:
    """(state, ppid, ...) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"  # a zombie has ended, awaiting its reaper


def _children(pid: int, want: int) -> list[int]:
    """The live children of `pid`, once there are `want` of them (30 s at most)."""
    deadline = time.monotonic() + 30
    while True:
        found = [
            int(e)
            for e in os.listdir("/proc")
            if e.isdigit() and (st := _stat(e)) and int(st[1]) == pid and st[0] != "Z"
        ]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_worker_killed_mid_run_is_reported_and_the_others_stop_cleanly():
    from sluice.local.runtime import LocalStack, consumer_count

    with LocalStack(workers="processes") as stack:
        supervisor = stack._pool._proc.pid
        expected = sum(
            consumer_count("processes", lid) * len(fn.sqs_sources)
            for lid, fn in stack.template.functions.items()
        )
        workers = _children(supervisor, expected)
        assert len(workers) == expected == 5  # 2 extract, 1 transform, 2 load
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not stack._pool.exits and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(stack._pool.exits) == 1
        assert stack._pool.exits[0] in stack.template.functions
    # Leaving the stack stopped the supervisor and the other workers.
    assert not _alive(supervisor)
    assert not any(_alive(pid) for pid in workers[1:])


def test_a_supervisor_that_cannot_start_its_workers_is_a_failure_too():
    """An order the supervisor cannot read (here: no environment) ends it; the runtime's
    wait sees that instead of waiting for messages nobody handles."""
    pool = WorkerPool(lambda kind, key: None)
    pool.launch()
    try:
        pool._proc.stdin.write(b'{"specs": []}\n')
        pool._proc.stdin.flush()
        deadline = time.monotonic() + 30
        while pool.failure() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.failure() == "the local worker supervisor ended on its own (exit 1)"
    finally:
        pool.stop()
