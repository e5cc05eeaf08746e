"""Run a migration locally: the real ASL in moto's interpreter, the real handlers in-process,
SQS and S3 wiring as template.yaml declares it, and real MySQL/MariaDB servers."""

from __future__ import annotations

import atexit
import gc
import inspect
import io
import json
import logging
import os
import sys
import threading
import time
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import aws
from .bulk_runner import LocalBulkRunner, create_glue_jobs
from .consumer import ACCOUNT, LambdaContext, Source, consume, load_handler
from .moto_hooks import (
    counted_scans,
    defer_moto_batch,
    glue_job_routes,
    import_items_as_json,
    lambda_routes,
    message_waiter,
    one_call_at_a_time,
    parsed_json_paths,
    shared_model_loaders,
)
from .template import Function, Resolver, Template

# `wait` asks whether the execution ended (a DescribeExecution, about 2 ms of the interpreter)
# every END_CHECK_SECONDS, and every AFTER_TASK_SECONDS for AFTER_TASK_CHECKS checks after one
# of its Lambda tasks returns (an execution ends a few states after its last task: about
# 10 ms). It calls `on_tick` at most every TICK_SECONDS (the CLI's progress view reads the
# whole manifest: about 40 ms for a 20-page run).
END_CHECK_SECONDS = 0.25
AFTER_TASK_SECONDS, AFTER_TASK_CHECKS = 0.02, 5
TICK_SECONDS = 0.5
LOCAL_OVERRIDES = {"CreateMissingTables": "true", "PollSeconds": "1"}
# Consumers per SQS event source of each function (1 where not named), by where they run:
# "threads" of this process, or worker "processes". Two load consumers either way: one waits
# on the server's LOAD DATA (the interpreter lock released) while the other reads and encodes
# its page; with one, loads ran one after another and fell behind extract (1M rows MySQL ->
# MySQL on 2 cores: pages moved in 7.5 s with one, 6.3 s with two, bench/RESULTS.md). Two is
# also the template's LoadConcurrency MinValue (SQS's least maximum concurrency), which the
# one exception below goes under: locally nothing enforces it, and the load workers divide
# the write rate by the consumers there are. In processes, two extract workers too: there
# the runtime's interpreter lock does not cap them (with threads, a second extract consumer
# moved the same pages no sooner). The load function's count is the stack's LoadConcurrency,
# which divides a table's write_rate among its load workers (SLUICE_LOAD_CONCURRENCY), and so
# not a parameter here.
CONSUMERS = {
    "threads": {"LoadFunction": 2},
    "processes": {"ExtractFunction": 2, "LoadFunction": 2},
}
# Except for a target kind named here. A DynamoDB load is Python work (the writer's HTTP
# threads, or the SDK into the in-process emulator) under the runtime's one interpreter lock,
# so with threads a second load consumer only contends for the lock: 1M bench rows into the
# bench's null endpoint, which answers at once, six alternating pairs, one consumer faster in
# each (19.5-20.8 s against 23.1-24.3 s, then 20.9-25.4 s against 22.9-25.7 s;
# bench/RESULTS.md). Not measured: an endpoint slow enough to answer (a real table over a
# network) that two consumers' writer threads would wait on together.
CONSUMERS_BY_TARGET = {("threads", "dynamodb"): {"LoadFunction": 1}}


# Worker processes cost CPU that threads do not: every S3, SQS and DynamoDB call crosses HTTP
# (botocore and urllib3 in the worker, werkzeug in the runtime). Measured on 2 cores (1M rows
# MySQL -> MySQL, alternating runs, bench/RESULTS.md): threads 18.4-26.2 s and 16.3-22.8 CPU-s,
# processes 21.2-27.0 s and 21.4-28.8 CPU-s, the database server sharing the cores. With threads every stage shares the
# runtime's one interpreter lock (one core); processes spread the stages' 13.5 CPU-s over the
# others while the runtime keeps its 8, so they should win once there are cores to spare: a
# model from these figures (no machine of more cores was measured), hence 4.
PROCESS_WORKERS_FROM_CORES = 4

_frozen_at_exit = threading.Lock()


def _no_collection_at_exit() -> None:
    """The emulator's state (every staged object, the manifest, moto's backends and models)
    lives until the process ends, and the interpreter's last garbage collections walked all of
    it: 0.70 s after `sluice run --local` of a million rows had printed its summary, against
    0.05 s with the objects frozen first (gc.freeze: the collector skips them, and the
    operating system takes the memory back). Registered once, by the first local stack, so
    exit handlers registered before it (logging's among them) still run after the freeze:
    it changes what the collector walks, not what runs."""
    if _frozen_at_exit.acquire(blocking=False):
        atexit.register(gc.freeze)


def _private_metrics(handler: Callable) -> None:
    """Powertools' Metrics keeps its metrics in dicts of the class, shared by every instance
    in a process: one per sandbox on Lambda, but the local runtime's consumer threads would
    add to, flush and clear one set between them (a flush between another thread's check
    and its serialisation raises, failing that batch). The handler module's `metrics` gets
    sets of its own; its default dimensions (the service) are copied."""
    metrics = inspect.unwrap(handler).__globals__.get("metrics")
    provider = getattr(metrics, "provider", None)
    if provider is None:
        return
    provider.metric_set, provider.metadata_set = {}, {}
    provider.dimension_set = dict(provider.dimension_set)
    metrics.metric_set, metrics.metadata_set = provider.metric_set, provider.metadata_set
    metrics.dimension_set = provider.dimension_set


def choose_workers(workers: str) -> str:
    """ "auto": worker processes on a machine of PROCESS_WORKERS_FROM_CORES cores or more,
    threads below; "threads" and "processes" as they are."""
    if workers == "auto":
        return "processes" if (os.cpu_count() or 1) >= PROCESS_WORKERS_FROM_CORES else "threads"
    return workers


def consumer_count(workers: str, function: str, target_kind: str | None = None) -> int:
    """How many consumers each of `function`'s SQS event sources gets, for a run into a
    `target_kind` target (None: not known, as for a stack that only holds a saved run)."""
    counts = {**CONSUMERS[workers], **CONSUMERS_BY_TARGET.get((workers, target_kind), {})}
    return counts.get(function, 1)


def project_root() -> Path:
    """The folder holding template.yaml: SLUICE_PROJECT_ROOT, else the source checkout."""
    if root := os.environ.get("SLUICE_PROJECT_ROOT"):
        return Path(root)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "template.yaml").exists():
            return parent
    raise FileNotFoundError(
        "template.yaml not found: set SLUICE_PROJECT_ROOT to the Sluice checkout"
    )


@dataclass
class Stats:
    """What the local runtime saw: SQS messages handled per stage, invocations per function."""

    consumed: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    invocations: Counter = field(default_factory=Counter)
    timed_out: Counter = field(default_factory=Counter)  # SQS invocations past their timeout


class LocalStack:
    """The stack of template.yaml, created in moto, with its handlers loaded in-process."""

    def __init__(
        self,
        root: Path | None = None,
        parameters: dict[str, str] | None = None,
        name: str = "sluice-local",
        consumers: bool = True,
        restore: Callable[[LocalStack], object] | None = None,
        timeouts: dict[str, float] | None = None,
        workers: str = "threads",
        target_kind: str | None = None,
    ):
        # "threads": consumers in this process, where tests can reach into a handler;
        # "processes": in worker processes (workers.py), on every core, as Lambda runs them.
        workers = choose_workers(workers)
        if workers not in CONSUMERS:
            raise ValueError(f"workers: 'auto', 'threads' or 'processes', not {workers!r}")
        self.root = root or project_root()
        self.template = Template.load(self.root / "template.yaml")
        self.params = {
            **self.template.parameter_defaults(),
            **LOCAL_OVERRIDES,
            **(parameters or {}),
            "LoadConcurrency": str(consumer_count(workers, "LoadFunction", target_kind)),
        }
        self.name = name
        # Without consumers nothing handles SQS messages: `sluice status` and `redrive` on a
        # saved local run look at and move messages without running the stages.
        self.consumers = consumers
        # Called once the resources exist and before consumers start (a saved run's state).
        self.restore = restore
        # Function timeouts (seconds, by logical id) in place of the template's: tests make a
        # timeout reachable without waiting minutes.
        self.timeouts = dict(timeouts or {})
        self.workers = workers
        self.target_kind = target_kind  # the run's target ("mysql", "dynamodb"), if known
        self._pool = None
        self.stats = Stats()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._exit = ExitStack()
        # Each function's handler as `invoke` calls it (Step Functions' tasks, tests).
        self.handlers: dict[str, Callable] = {}
        # A consumer thread's own instance of its function's module (see _consume): what a
        # test patches in `handlers[lid]`'s module does not reach the consumer threads.
        self._sandbox = threading.local()
        self._task_returned = threading.Event()  # a state machine's Lambda task came back

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> LocalStack:
        from moto import mock_aws

        # moto's interpreter logs every caught ASL error at ERROR level; the execution history
        # and the summary report failures, so keep them out of the terminal.
        logging.getLogger("moto").setLevel(logging.CRITICAL)
        warnings.filterwarnings("ignore", message="No application metrics to publish")

        for k, v in {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": aws.region(),
            "AWS_REGION": aws.region(),
        }.items():
            os.environ.setdefault(k, v)
        _no_collection_at_exit()
        self._exit.enter_context(shared_model_loaders())  # before moto reads its models
        defer_moto_batch()  # before moto's Step Functions backend imports its interpreter
        # Lambda stays on moto's full backend (not lambda_simple): its invoke is what moto_hooks replaces.
        mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._exit.enter_context(mock)
        self._exit.enter_context(one_call_at_a_time())  # its threads share moto's backends
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's request lines
        if self.workers == "processes" and self.consumers:
            from .workers import WorkerPool

            self._pool = WorkerPool(self._count)
            self._exit.callback(self._pool.stop)  # after an error before consumers start
            self._pool.launch()  # it imports while the resources are made
        self._exit.enter_context(import_items_as_json())
        self._exit.enter_context(counted_scans())  # verification counts a table by Scan
        aws.reset_clients()
        self._exit.callback(aws.reset_clients)
        self._create_resources()
        self._exit.enter_context(
            lambda_routes(
                {
                    self.function_names[f]: self._task(self._route(f))
                    for f in self.template.functions
                }
            )
        )
        self._exit.enter_context(parsed_json_paths())
        # The bulk path's Glue job runs the same job code on local PySpark.
        runner = LocalBulkRunner()
        self._exit.callback(runner.close)
        self._exit.enter_context(glue_job_routes(dict.fromkeys(self.glue_jobs.values(), runner)))
        if self.restore:
            self.restore(self)
        if self.consumers:
            self._start_consumers()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_consumers()
        self._exit.close()

    def stop_consumers(self) -> None:
        """Stop handling SQS messages; a batch being handled finishes first."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self._threads = []
        if self._pool:
            self._pool.stop()
            self._pool = None

    # ---------------------------------------------------------------- resources
    def _create_resources(self) -> None:
        t, region = self.template, aws.region()
        s3, sqs, ddb = aws.client("s3"), aws.client("sqs"), aws.client("dynamodb")
        refs: dict[str, str] = {}
        attrs: dict[tuple[str, str], str] = {}
        lists = t.list_parameters()
        params = {
            **{k: v.split(",") if k in lists else v for k, v in self.params.items()},
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": self.name,
            "AWS::Partition": "aws",
            "AWS::NoValue": None,
        }
        resolve = Resolver(params, refs, attrs, {})
        declared = t.doc.get("Conditions", {})
        resolve.conditions = {k: self._condition(v, resolve, declared) for k, v in declared.items()}

        for lid, res in t.resources_of("AWS::S3::Bucket").items():
            name = resolve(res["Properties"]["BucketName"]).lower()
            s3.create_bucket(Bucket=name)
            refs[lid] = name
            attrs[(lid, "Arn")] = f"arn:aws:s3:::{name}"
        # Dead-letter queues first: a queue's redrive policy names its DLQ's ARN.
        ordered = sorted(t.queues.values(), key=lambda q: q.dlq is not None)
        for q in ordered:
            qname = f"{self.name}-{q.logical_id}"
            qattrs = {"VisibilityTimeout": str(q.visibility_timeout)}
            if q.dlq:
                qattrs["RedrivePolicy"] = json.dumps(
                    {
                        "deadLetterTargetArn": attrs[(q.dlq, "Arn")],
                        "maxReceiveCount": int(resolve(q.max_receive_count)),
                    }
                )
            url = sqs.create_queue(QueueName=qname, Attributes=qattrs)["QueueUrl"]
            refs[q.logical_id] = url
            attrs[(q.logical_id, "Arn")] = f"arn:aws:sqs:{region}:{ACCOUNT}:{qname}"
            attrs[(q.logical_id, "QueueName")] = qname
        for lid, res in t.resources_of("AWS::DynamoDB::Table").items():
            props = res["Properties"]
            name = f"{self.name}-{lid}"
            ddb.create_table(
                TableName=name,
                AttributeDefinitions=props["AttributeDefinitions"],
                KeySchema=props["KeySchema"],
                BillingMode="PAY_PER_REQUEST",
            )
            refs[lid] = name
        self.function_names = {lid: f"{self.name}-{lid}" for lid in t.functions}
        for lid, fname in self.function_names.items():
            refs[lid] = fname
            attrs[(lid, "Arn")] = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{fname}"
        for lid in t.resources_of("AWS::Serverless::LayerVersion"):
            refs[lid] = f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{lid}:1"
        self.refs, self.attrs, self.resolve = refs, attrs, resolve

        self.configure_notifications()
        self._create_functions()
        self.glue_jobs = create_glue_jobs(self.template, resolve, self.role_arn)
        refs.update(self.glue_jobs)
        self._create_state_machine()

    @staticmethod
    def _condition(expr: Any, resolve: Resolver, declared: dict) -> bool:
        def check(e: Any) -> bool:
            return LocalStack._condition(e, resolve, declared)

        if "Condition" in expr:  # !Condition Name: another declared condition
            return check(declared[expr["Condition"]])
        if "Fn::Not" in expr:
            return not check(expr["Fn::Not"][0])
        if "Fn::And" in expr:
            return all(check(e) for e in expr["Fn::And"])
        if "Fn::Or" in expr:
            return any(check(e) for e in expr["Fn::Or"])
        if "Fn::Equals" in expr:
            a, b = (resolve(x) for x in expr["Fn::Equals"])
            return a == b
        raise ValueError(f"template condition not supported locally: {expr}")

    def configure_notifications(self) -> None:
        """The staging bucket's S3 event notifications to the stage queues, as the template
        declares them."""
        s3 = aws.client("s3")
        (bucket_lid,) = self.template.resources_of("AWS::S3::Bucket")
        configs = []
        for n in self.template.notifications:
            rules = [
                {"Name": k, "Value": v}
                for k, v in (("prefix", n.prefix), ("suffix", n.suffix))
                if v
            ]
            configs.append(
                {
                    "QueueArn": self.attrs[(n.queue, "Arn")],
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": rules}},
                }
            )
        s3.put_bucket_notification_configuration(
            Bucket=self.refs[bucket_lid], NotificationConfiguration={"QueueConfigurations": configs}
        )

    def function_environment(self, fn: Function) -> dict[str, str]:
        env = {k: self.resolve(v) for k, v in fn.environment.items()}
        return {k: "" if v is None else str(v) for k, v in env.items()}

    def _create_functions(self) -> None:
        lam, iam = aws.client("lambda"), aws.client("iam")
        role = iam.create_role(
            RoleName=f"{self.name}-role",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {
                                "Service": ["lambda.amazonaws.com", "states.amazonaws.com"]
                            },
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        self.role_arn = role
        zbuf = io.BytesIO()
        with zipfile.ZipFile(zbuf, "w") as z:
            z.writestr("app.py", "# dispatched in-process by sluice.local\n")
        envs = {lid: self.function_environment(fn) for lid, fn in self.template.functions.items()}
        merged: dict[str, str] = {}
        for env in envs.values():
            for k, v in env.items():
                if merged.get(k, v) != v:
                    raise ValueError(
                        f"template: {k} differs between functions; the local runtime shares one environment"
                    )
                merged[k] = v
        # In-process handlers share one process environment: every function's variables,
        # which must agree (checked above), set before the handler modules are imported.
        os.environ.update(merged)
        # The in-process emulator answers only through botocore, not over HTTP (a target
        # endpoint_url, when given, is reached over HTTP all the same).
        os.environ["SLUICE_DYNAMODB_SENDER"] = "sdk"
        self.environment = merged
        for lid, fn in self.template.functions.items():
            lam.create_function(
                FunctionName=self.function_names[lid],
                Runtime=fn.runtime,
                Role=role,
                Handler=fn.handler,
                Code={"ZipFile": zbuf.getvalue()},
                Timeout=fn.timeout,
                Environment={"Variables": envs[lid]},
            )
            self.handlers[lid] = self._load_handler(fn)

    def _load_handler(self, fn: Function) -> Callable:
        return load_handler(self.root, fn.code_uri, fn.handler, fn.logical_id)

    def _create_state_machine(self) -> None:
        lid, path, subs = self.template.state_machine()
        definition = path.read_text()
        for k, v in subs.items():
            definition = definition.replace("${" + k + "}", str(self.resolve(v)))
        sfn = aws.client("stepfunctions")
        self.state_machine_arn = sfn.create_state_machine(
            name=f"{self.name}-migration", definition=definition, roleArn=self.role_arn
        )["stateMachineArn"]

    def stage_queues(self) -> list:
        """Each stage's queue and dead-letter queue, for `sluice redrive`."""
        from ..redrive import STAGES, StageQueues

        out = []
        for stage in STAGES:
            q, d = f"{stage.capitalize()}Queue", f"{stage.capitalize()}DLQ"
            out.append(
                StageQueues(
                    stage,
                    self.refs[q],
                    self.attrs[(q, "Arn")],
                    self.refs[d],
                    self.attrs[(d, "Arn")],
                )
            )
        return out

    # ---------------------------------------------------------------- invocation
    def timeout_of(self, lid: str) -> float:
        """A function's timeout in seconds: the template's, unless `timeouts` overrides it."""
        return self.timeouts.get(lid, self.template.functions[lid].timeout)

    def _route(self, lid: str) -> Callable[[str, dict], object]:
        timeout = self.timeout_of(lid)

        def invoke(_name: str, event: dict) -> object:
            self.stats.invocations[lid] += 1
            own = getattr(self._sandbox, "handlers", {})
            return (own.get(lid) or self.handlers[lid])(
                event, LambdaContext(self.function_names[lid], timeout=timeout)
            )

        return invoke

    def _task(self, route: Callable[[str, dict], object]) -> Callable[[str, dict], object]:
        """`route` as a state machine's Lambda task calls it: `wait` hears when it returns."""

        def invoke(name: str, event: dict) -> object:
            try:
                return route(name, event)
            finally:
                self._task_returned.set()

        return invoke

    def invoke(self, lid: str, event: dict) -> object:
        """Call a function's handler as Lambda would (sam local invoke, in-process)."""
        return self._route(lid)(lid, event)

    # ---------------------------------------------------------------- SQS event sources
    def _start_consumers(self) -> None:
        if self.workers == "processes":
            self._start_worker_processes()
            return
        for lid, fn in self.template.functions.items():
            for src in fn.sqs_sources:
                for _ in range(consumer_count("threads", lid, self.target_kind)):
                    th = threading.Thread(
                        target=self._consume, args=(lid, src), name=f"sqs-{lid}", daemon=True
                    )
                    th.start()
                    self._threads.append(th)

    def _count(self, kind: str, key: str) -> None:
        getattr(self.stats, kind)[key] += 1

    def _source(self, lid: str, src) -> Source:
        return Source(
            queue=src.queue,
            url=self.refs[src.queue],
            arn=self.attrs[(src.queue, "Arn")],
            function=lid,
            batch_size=src.batch_size,
            report_failures=src.report_failures,
            timeout=self.timeout_of(lid),
        )

    def _consume(self, lid: str, src) -> None:
        # Lambda runs concurrent invocations of a function in separate execution environments,
        # so handler modules keep an invocation's state at module level: Powertools'
        # BatchProcessor holds the batch's records and failures. Two consumer threads sharing
        # one module mixed up their batches (a failed message reported handled, and deleted),
        # so each consumer thread runs its own instance of the module, as a sandbox would.
        handler = self._load_handler(self.template.functions[lid])
        _private_metrics(handler)
        self._sandbox.handlers = {lid: handler}
        source = self._source(lid, src)
        consume(
            source,
            invoke=lambda event: self.invoke(lid, event),  # through invoke, which tests wrap
            stop=self._stop,
            count=self._count,
            ready=message_waiter(source.url, aws.region()),
        )

    def _start_worker_processes(self) -> None:
        """Each SQS event source's consumers as processes (workers.py), which reach this
        process's emulator over HTTP."""
        from moto.server import ThreadedMotoServer

        from .workers import WorkerSpec

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self._exit.callback(server.stop)
        host, port = server.get_host_and_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        env["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
        log = getattr(sys.stdout, "target", None)  # handler_output_to's file, if active
        specs = [
            WorkerSpec(
                root=str(self.root),
                source=self._source(lid, src),
                function_name=self.function_names[lid],
                code_uri=fn.code_uri,
                handler=fn.handler,
                log=getattr(log, "name", None),
            )
            for lid, fn in self.template.functions.items()
            for src in fn.sqs_sources
            for _ in range(consumer_count("processes", lid, self.target_kind))
        ]
        self._pool.start(specs, env)

    # ---------------------------------------------------------------- executions
    def start_execution(self, payload: dict, name: str | None = None) -> str:
        sfn = aws.client("stepfunctions")
        kwargs = {"stateMachineArn": self.state_machine_arn, "input": json.dumps(payload)}
        if name:
            kwargs["name"] = name
        return sfn.start_execution(**kwargs)["executionArn"]

    def wait(
        self, execution_arn: str, timeout: float = 3600, on_tick: Callable[[], None] | None = None
    ) -> dict:
        sfn = aws.client("stepfunctions")
        deadline = time.monotonic() + timeout
        ticked, quick = 0.0, 0
        while True:
            desc = sfn.describe_execution(executionArn=execution_arn)
            if desc["status"] != "RUNNING":
                if on_tick:
                    on_tick()
                return desc
            if self._pool and (failure := self._pool.failure()):
                raise RuntimeError(
                    f"{failure} (its traceback is above); the run cannot go on without it"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} still running after {timeout} s")
            if on_tick and time.monotonic() - ticked >= TICK_SECONDS:
                on_tick()
                ticked = time.monotonic()
            if quick:
                quick -= 1
                time.sleep(AFTER_TASK_SECONDS)
            elif self._task_returned.wait(END_CHECK_SECONDS):
                self._task_returned.clear()
                quick = AFTER_TASK_CHECKS
                time.sleep(AFTER_TASK_SECONDS)

    def history(self, execution_arn: str) -> list[dict]:
        sfn = aws.client("stepfunctions")
        events, kwargs = [], {"executionArn": execution_arn}
        while True:
            resp = sfn.get_execution_history(**kwargs)
            events.extend(resp["events"])
            if not resp.get("nextToken"):
                return events
            kwargs["nextToken"] = resp["nextToken"]


class _LogSwitch:
    """A stdout stand-in whose destination changes per run.

    Powertools loggers keep the stream that was sys.stdout when they were created; handler
    modules are imported once per run but share the named logger, so a later run must be
    able to point the same stream object at its own log file.
    """

    def __init__(self):
        self.target = None

    def write(self, text: str) -> int:
        return (self.target or sys.__stdout__).write(text)

    def flush(self) -> None:
        (self.target or sys.__stdout__).flush()

    def isatty(self) -> bool:
        return False


_SWITCH = _LogSwitch()


@contextmanager
def handler_output_to(path: Path):
    """While active, what handlers print (Powertools logs and metrics) goes to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    real = sys.stdout
    with open(path, "a", buffering=1) as f:
        _SWITCH.target = f
        sys.stdout = _SWITCH
        try:
            yield
        finally:
            sys.stdout = real
            _SWITCH.target = None
