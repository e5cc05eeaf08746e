"""Start and stop the null DynamoDB endpoint (bench.null_dynamo) in its own process."""

from __future__ import annotations

import json
import subprocess
import urllib.request

from .common import PY, ROOT


class NullDynamo:
    """The null endpoint in a child process, so its CPU is not the client's."""

    def __enter__(self) -> NullDynamo:
        self.proc = subprocess.Popen(
            [PY, "-m", "bench.null_dynamo"], cwd=ROOT, stdout=subprocess.PIPE
        )
        port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url + "/stats", timeout=10) as r:
            return json.loads(r.read())

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
