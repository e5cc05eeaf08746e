"""The local runtime's stage consumers as processes, as Lambda runs each invocation in a
sandbox of its own: extract, transform and load use every core instead of sharing one
interpreter lock with each other and the emulator.

The emulator stays in the runtime's process, served over HTTP on 127.0.0.1 (moto's
ThreadedMotoServer, on the same in-memory state); a worker's boto3 clients reach it through
AWS_ENDPOINT_URL. One supervisor process (`python -m sluice.local.workers`) imports pyarrow,
boto3 and Powertools once (while the runtime creates its resources), then forks a worker per
consumer, so workers start in milliseconds; it is a fresh interpreter with no threads, which makes forking safe, and it
never imports the caller's main module. The runtime writes the workers' specs on the
supervisor's stdin and closes it to stop them; what they saw (messages consumed and failed,
invocations) comes back as JSON lines on the supervisor's stdout."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .consumer import Source

STOP_SECONDS = 30  # how long a worker may take to finish its batch once told to stop


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs: its function, its queue, and where its handler's output
    goes."""

    root: str
    source: Source
    function_name: str
    code_uri: str
    handler: str
    log: str | None

    @classmethod
    def from_dict(cls, d: dict) -> WorkerSpec:
        return cls(**{**d, "source": Source(**d["source"])})


class WorkerPool:
    """The supervisor process and the thread that files its workers' counts.

    `launch()` starts the supervisor, which imports while the runtime creates its resources;
    `start()` hands it the workers' specs and environment, and it forks them."""

    def __init__(self, count: Callable[[str, str], None]):
        self._count = count
        self._proc: subprocess.Popen | None = None
        self._drain: threading.Thread | None = None
        self.exits: list[str] = []  # functions whose worker ended before it was told to stop

    def launch(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "sluice.local.workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def start(self, specs: list[WorkerSpec], environment: dict[str, str]) -> None:
        if self._proc is None:
            self.launch()
        order = {"environment": environment, "specs": [asdict(s) for s in specs]}
        self._proc.stdin.write(json.dumps(order).encode() + b"\n")
        self._proc.stdin.flush()
        self._drain = threading.Thread(target=self._file_counts, daemon=True)
        self._drain.start()

    def _file_counts(self) -> None:
        for line in self._proc.stdout:
            kind, key = json.loads(line)
            if kind == "exit":
                self.exits.append(key)
            else:
                self._count(kind, key)

    def failure(self) -> str | None:
        """Why the workers cannot go on, if they cannot: a worker, or the supervisor, that
        ended before it was told to stop."""
        if self.exits:
            return f"the local worker process of {self.exits[0]} ended on its own"
        if self._proc is not None and self._proc.poll() is not None:
            return f"the local worker supervisor ended on its own (exit {self._proc.returncode})"
        return None

    def stop(self) -> None:
        """Stop every worker; a batch being handled finishes first."""
        if self._proc is None:
            return
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=STOP_SECONDS + 5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._drain:
            self._drain.join()
        self._proc = None


# ---------------------------------------------------------------- the supervisor's side


class _Flag:
    """A stop flag a signal handler may set (an Event's lock could deadlock there)."""

    def __init__(self):
        self.set_ = False

    def is_set(self) -> bool:
        return self.set_

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)


def _serve(spec: WorkerSpec, events: int) -> None:
    """A worker: the function's handler on its queue's messages until SIGTERM."""
    stop = _Flag()
    signal.signal(signal.SIGTERM, lambda *_: setattr(stop, "set_", True))

    def emit(kind: str, key: str) -> None:
        os.write(events, json.dumps([kind, key]).encode() + b"\n")  # < PIPE_BUF: atomic

    if spec.log:
        # Powertools loggers keep the stream that is sys.stdout when the handler is loaded.
        sys.stdout = open(spec.log, "a", buffering=1)  # noqa: SIM115 - the process's stdout
    from .. import aws
    from .consumer import LambdaContext, consume, load_handler

    aws.reset_clients()
    source = spec.source
    handler = load_handler(Path(spec.root), spec.code_uri, spec.handler, source.function)

    def invoke(event: dict) -> object:
        emit("invocations", source.function)
        return handler(event, LambdaContext(spec.function_name, timeout=source.timeout))

    consume(source, invoke=invoke, stop=stop, count=emit, wait_seconds=1)
    sys.stdout.flush()


def main() -> None:
    """The supervisor: fork a worker per spec read from stdin, in the environment sent with
    them; stop them at stdin's end."""
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    import aws_lambda_powertools  # noqa: F401 - imported once, shared by every fork

    import sluice.stages  # noqa: F401

    line = b""
    while not line.endswith(b"\n"):  # unbuffered: select() below watches the same fd
        chunk = os.read(0, 65536)
        if not chunk:
            return
        line += chunk
    order = json.loads(line)
    os.environ.clear()
    os.environ.update(order["environment"])
    specs = [WorkerSpec.from_dict(s) for s in order["specs"]]
    events = os.dup(sys.stdout.fileno())
    children: dict[int, WorkerSpec] = {}
    for spec in specs:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _serve(spec, events)
            except BaseException:  # reported, then the worker is gone as a crashed one is
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        children[pid] = spec

    def reap(report: bool) -> None:
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            spec = children.pop(pid)
            if report:
                os.write(events, json.dumps(["exit", spec.source.function]).encode() + b"\n")

    while True:  # until the runtime closes stdin; a worker that dies is reported meanwhile
        ready, _, _ = select.select([0], [], [], 0.2)
        reap(report=True)
        if ready and not os.read(0, 4096):
            break
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while children and time.monotonic() < deadline:
        reap(report=False)
        time.sleep(0.05)
    for pid in children:
        os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
