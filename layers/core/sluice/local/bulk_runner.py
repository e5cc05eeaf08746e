"""The bulk path in a local run: template.yaml's Glue job created in moto, and its runs executed
by the same job code on local PySpark.

Spark's Python workers are processes of their own, outside this process's emulator, so a run
serves the emulator over HTTP (moto's ThreadedMotoServer shares the in-process state) and
gives the workers its endpoint. The databases' connections come from SLUICE_SOURCE_URL and
SLUICE_TARGET_URL (or the contract's URLs) as in the stages; the job's driver resolves them
and hands them to its workers.
"""

from __future__ import annotations

import logging
import sys
import threading

from .. import aws
from .template import Resolver, Template


def create_glue_jobs(template: Template, resolve: Resolver, role_arn: str) -> dict[str, str]:
    """Create each AWS::Glue::Job of the template in moto; returns {logical id: job name}."""
    glue = aws.client("glue")
    names = {}
    for lid, res in template.resources_of("AWS::Glue::Job").items():
        props = res["Properties"]
        name = resolve(props["Name"])
        args = {
            k: str(v) for k, v in (resolve(props.get("DefaultArguments", {})) or {}).items() if v
        }
        glue.create_job(
            Name=name,
            Role=role_arn,
            Command=resolve(props["Command"]),
            DefaultArguments=args,
            GlueVersion=str(resolve(props.get("GlueVersion", "5.0"))),
            ExecutionProperty={
                "MaxConcurrentRuns": int(
                    resolve(props.get("ExecutionProperty", {}).get("MaxConcurrentRuns", 1))
                )
            },
        )
        names[lid] = name
    return names


class LocalBulkRunner:
    """Runs one Glue job run's arguments through sluice.bulk_spark on a local SparkSession."""

    def __init__(self):
        self._server = None
        self._lock = threading.Lock()

    def endpoint(self) -> str:
        """The emulator over HTTP, started on first use (most local runs have no bulk table)."""
        with self._lock:
            if self._server is None:
                from moto.server import ThreadedMotoServer

                logging.getLogger("werkzeug").setLevel(logging.ERROR)
                server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
                server.start()
                self._server = server
            host, port = self._server.get_host_and_port()
            return f"http://{host}:{port}"

    def __call__(self, arguments: dict[str, str]) -> dict:
        from ..bulk import BulkJob
        from ..bulk_spark import local_session, run_job

        job = BulkJob.from_arguments(
            arguments,
            region=aws.region(),
            aws_endpoint_url=self.endpoint(),
            python_paths=tuple(p for p in sys.path if p),
        )
        return run_job(local_session(), job)

    def close(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.stop()
                self._server = None
