"""The one place that touches moto internals: the hooks the local runtime needs.

1. Lambda invocations dispatched in-process. moto's Step Functions interpreter invokes
   Lambda Task states through moto's Lambda backend, which ends in
   `moto.awslambda.models.LambdaFunction.invoke(self, body, request_headers,
   response_headers)`. Replacing that method routes every invocation to a Python callable
   (the real handler), keyed by function name. While routes are active, the interpreter's
   Lambda client is made once per region and reused: moto 5.2.5 makes a new boto3 client
   for every Lambda Task state it runs (`lambda_eval_utils.boto_client_for`, whose
   credentials and settings are fixed), which parses botocore's service model again each
   time (an estimate, not measured alone: about 0.1 s of CPU for each poll of a run's
   progress, from 1.67 s of client-making CPU over a run's 13-15 polls).
2. ImportTable items read as JSON. moto 5.2.5's import
   (`moto.dynamodb.models.table_import.TableImport._process_s3_files`) parses the staged
   DynamoDB JSON with py_partiql_parser's JsonParser, which leaves string escapes undecoded:
   `\\n` stays two characters and `\\"` ends the string. DynamoDB's import decodes them, so
   without this hook a local import corrupts every string holding a quote, a backslash or a
   control character (Sluice's read-back verification catches it). The hook parses each line
   with json.loads and otherwise does what moto does.
3. Glue job runs executed in-process. `glue:startJobRun.sync` calls moto's StartJobRun, which
   ends in `moto.glue.models.FakeJob.start_job_run(self, **kwargs)` returning the run's id,
   then polls GetJobRun every 0.5 s until the run's `JobRunState` is terminal. A `FakeJobRun`
   is a `ManagedState` that moto advances by itself (STARTING, RUNNING, SUCCEEDED); a routed
   run is pinned instead (its `_status`, with `_transitions` leading nowhere else) and moved
   by the job's own outcome. And moto 5.2.5's Step Functions ends every glue .sync task in
   States.Runtime once the run is over: its callback code calls `interrupt_all()` on a
   callback endpoint that exists only for services that also support .waitForTaskToken,
   which its Glue service does not claim. While routes are active, that service's
   supported patterns (`state_task_service_glue._SUPPORTED_INTEGRATION_PATTERNS`, the set
   every instance shares) include WaitForTaskToken, so the endpoint exists and the task
   ends with the run's own state (tests/unit/test_moto_glue_hooks.py).
4. DynamoDB, S3 and SQS calls one at a time. moto's backends hold no lock of their own: a Query
   deep-copies each item it returns while an UpdateItem on another thread adds attributes to
   the same item in place, and a ListObjects walks a bucket's keys while a PutObject adds
   one; either ends in "RuntimeError: dictionary changed size during iteration". The local
   runtime makes such calls from several threads at once (its progress polls, the thread
   consumers, and the HTTP server's request threads for worker processes), so while active
   every DynamoDB action (`DynamoHandler.call_action`) and every S3 bucket or object request
   (`S3Response.bucket_response`, `key_response`, `ambiguous_response`) holds one re-entrant
   lock. So do SQS's sends, deletes and visibility changes (`SQSBackend` methods): a
   ReceiveMessage walks the queue's in-flight set while a DeleteMessage on another thread
   takes from it ("Set changed size during iteration", with two worker processes on one
   queue). A ReceiveMessage holds the lock only while it looks: its long poll waits on the
   queue's own condition between looks, outside the lock. (tests/unit/test_moto_hooks.py)
5. Waiting for a queue's messages without asking. The thread consumers share the emulator's
   process; each empty ReceiveMessage goes through botocore and moto's serialisers on the
   interpreter they all share, 20 times a second per idle queue. `message_waiter` waits
   on the queue's own condition instead (`moto.sqs.models.Queue.wait_for_messages`, which
   every SendMessage notifies), so an idle consumer costs nothing and a new message wakes
   it at once; the consumer then receives it through the API as before.
6. One model loader per search path. Every botocore Session makes its own Loader
   (`botocore.session.create_loader`), and moto makes a new one for each model it reads
   (`moto.core.utils.create_loader`), so the same service models are decoded from JSON
   again and again: importing moto's Step Functions interpreter alone makes three Sessions
   that each read EC2's endpoints, and moto and sluice's clients each read every service
   model. While active, both factories hand out one Loader per search path (its cache
   keeps each model it decoded), which took a local stack's start from 2.1 to 1.3 s.

7. moto's Batch package left unrun for one enum. The Step Functions interpreter's Batch
   service imports `moto.batch.utils.JobStatus`, and importing a submodule runs its package's
   `__init__` first, which imports Batch's models and with them EC2's, ECS's, IAM's and
   Logs' (EC2 decodes its regions and instance types from JSON): 0.7 s of the interpreter's
   0.85 s import, on every local stack's start. Before the interpreter is imported (the local
   stack's start calls `defer_moto_batch()` before moto's Step Functions backend is first used),
   `moto.batch` is put in `sys.modules` as its own package whose `__init__` has not run
   yet: its submodules import as usual, and the first attribute asked of the package itself
   (moto's `get_backend("batch")` asks for `batch_backends`) runs `__init__` in place, so
   whoever does use Batch gets the whole of it.
8. Each JSONPath parsed once. moto's interpreter parses a state's JSONPaths (InputPath,
   Parameters' `.$` fields, ResultSelector, ResultPath, Choice variables) every time the
   state runs, and every parse builds a new jsonpath_ng parser, whose `yacc()` reads its
   tables and reflects its grammar again (`json_path.extract_json` and
   `result_path.ResultPath._eval_body` call `parse(path)`): 0.34 s of a million-row local
   run's interpreter time went there (84 of its py-spy samples; 6 with the hook). While active,
   both modules' `parse` keeps each path's parsed expression; jsonpath_ng's expressions
   are not changed by `find` or `update_or_create`, so one serves every evaluation.

9. A table's items counted without paging through them. moto 5.2.5's Scan sorts every item
   of the table again for each page it returns (1 MB of items) and walks from the first item
   to the page's start key, comparing key values as DynamoType objects: a Scan through a
   table costs the square of its size. Verification counts a DynamoDB target table with a
   Scan whose Select is COUNT: 37 s of a 58.7 s run of the demo's 124,438 items into
   DynamoDB (py-spy, 1,849 of 3,380 samples at 50 Hz). While active, a Scan that asks for nothing but the COUNT of a whole table (no
   filter, index, Limit, segment, start key or consumed capacity) is answered in one
   response holding the table's item count, as a table that fits one page is; every other
   Scan goes to moto's own.

tests/unit/test_moto_hooks.py fails loudly if a moto upgrade moves a patched method, and
tells when moto's own import stops needing the second and seventh hooks.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager

import botocore.session
from moto.awslambda import models as _lambda_models
from moto.core import utils as _moto_utils
from moto.core.utils import gzip_decompress
from moto.dynamodb import responses as _dynamodb_responses
from moto.dynamodb.models import table_import as _table_import
from moto.glue import models as _glue_models
from moto.s3 import responses as _s3_responses
from moto.sqs.models import SQSBackend as _SQSBackend


def defer_moto_batch() -> None:
    """Hook 7, for the rest of the process (it changes nothing but when `moto.batch`'s
    `__init__` runs): call before anything imports moto's Step Functions interpreter."""
    _package_unrun_until_used("moto.batch")


def _package_unrun_until_used(name: str) -> None:
    """`name` in sys.modules as its package, its `__init__` run only when an attribute of the
    package itself is first asked for (submodules import without it). Another thread asking
    meanwhile waits for `__init__` to finish; a name asked for from inside `__init__` is
    missing, as in any module being imported; an `__init__` that raises runs again next time."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        return  # not a package in this moto: nothing to defer
    package = importlib.util.module_from_spec(spec)  # __path__, __spec__: submodules import
    lock = threading.RLock()
    state = {"ran": False, "running": False}

    def __getattr__(attr: str):
        if attr.startswith("__") and attr != "__all__":  # probes such as __wrapped__
            raise AttributeError(attr)
        with lock:
            if not state["ran"]:
                if state["running"]:  # from inside __init__: not defined yet
                    raise AttributeError(f"module {name!r} has no attribute {attr!r} yet")
                state["running"] = True
                try:
                    spec.loader.exec_module(package)
                finally:
                    state["running"] = False
                state["ran"] = True
                if package.__dict__.get("__getattr__") is __getattr__:
                    del package.__getattr__
        return object.__getattribute__(package, attr)

    package.__getattr__ = __getattr__
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, package)  # as an import binds it to its parent


def _sfn():
    """The modules of moto's Step Functions interpreter that hooks 1 and 3 patch, imported
    when a hook is first entered, without running moto's Batch package (hook 7); under hook 6
    the interpreter's import reads each service model once."""
    defer_moto_batch()
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
        lambda_eval_utils,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_glue,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
        ResourceCondition,
    )

    return lambda_eval_utils, state_task_service_glue, ResourceCondition


Invoke = Callable[[str, dict], object]
_lock = threading.Lock()


class _SharedPatch:
    """A patch that every active local stack shares: the first to enter applies it, the last
    to leave undoes it (stacks of one process may overlap, as tests' do)."""

    def __init__(self, apply: Callable[[], None], undo: Callable[[], None]):
        self._apply, self._undo, self.users = apply, undo, 0

    @classmethod
    def replacing(cls, owner, name: str, replacement, original) -> _SharedPatch:
        """The patch that sets `owner.name` to `replacement`, and back to `original`."""
        return cls(
            lambda: setattr(owner, name, replacement), lambda: setattr(owner, name, original)
        )

    @contextmanager
    def active(self):
        with _lock:
            self.users += 1
            if self.users == 1:
                self._apply()
        try:
            yield
        finally:
            with _lock:
                self.users -= 1
                if not self.users:
                    self._undo()


_routes: dict[str, Invoke] = {}
_original = _lambda_models.LambdaFunction.invoke


def _dispatch(self, body, request_headers, response_headers):
    route = _routes.get(self.function_name)
    if route is None:
        return _original(self, body, request_headers, response_headers)
    event = json.loads(body) if body else {}
    try:
        result = route(self.function_name, event)
    except Exception as exc:  # the Lambda service reports a handler's exception as a payload
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(
            {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "stackTrace": traceback.format_exception(exc)[-5:],
            }
        ).encode()
    return json.dumps(result, default=str).encode()


_original_client_for: Callable | None = None  # moto's, once lambda_routes has been entered
_clients: dict[tuple[str, str], object] = {}


def _client_for(region: str, service: str, state_credentials=None):
    """moto's boto_client_for, one client per region and service (its credentials and
    settings are the same for every call)."""
    with _lock:
        key = (region, service)
        if key not in _clients:
            _clients[key] = _original_client_for(region=region, service=service)
        return _clients[key]


@contextmanager
def lambda_routes(routes: dict[str, Invoke]):
    """While active, invoking a function named in `routes` calls routes[name](name, event)."""
    global _original_client_for
    sfn_lambda = _sfn()[0]
    with _lock:
        _routes.update(routes)
        _lambda_models.LambdaFunction.invoke = _dispatch
        if _original_client_for is None:
            _original_client_for = sfn_lambda.boto_client_for
        sfn_lambda.boto_client_for = _client_for
    try:
        yield
    finally:
        with _lock:
            for name in routes:
                _routes.pop(name, None)
            if not _routes:
                _lambda_models.LambdaFunction.invoke = _original
                sfn_lambda.boto_client_for = _original_client_for
                _clients.clear()


# ---------------------------------------------------------------- ImportTable items

_original_import = _table_import.TableImport._process_s3_files


def _process_s3_files_as_json(self, s3_backend, bucket) -> None:
    """moto's TableImport._process_s3_files, with each line parsed by json.loads."""
    from moto.dynamodb.models import dynamodb_backends

    dynamo = dynamodb_backends[self.account_id][self.region_name]
    with _one_call:  # the import's own thread, beside the calls hook 4 serialises
        self.table = dynamo.create_table(
            name=self.table_name,
            billing_mode=self.billing_mode,
            throughput=self.throughput,
            schema=self.key_schema,
            global_indexes=self.global_indexes,
            indexes=None,
            attr=self.attrs,
            sse_specification=None,
            streams=None,
            tags=[],
            deletion_protection_enabled=False,
            warm_throughput=None,
        )
        keys, _, _, _ = s3_backend.list_objects(
            bucket,
            prefix=self.s3_source.get("S3KeyPrefix"),
            delimiter=None,
            marker=None,
            max_keys=None,
        )
    for key in keys:
        content = gzip_decompress(key.value) if self.compression_type == "GZIP" else key.value
        for line in content.splitlines():
            if not line.strip():
                continue
            self.processed_count += 1
            self.processed_bytes += len(line)
            try:
                with _one_call:  # the import's thread writes while calls read
                    self.table.put_item(item_attrs=json.loads(line)["Item"])
                self.imported_count += 1
            except Exception as e:  # as moto: an item's error is counted, the import goes on
                self.failure_message = str(e)
                self.error_count += 1
    self.status = "COMPLETED" if self.error_count == 0 else "FAILED"


_as_json = _SharedPatch.replacing(
    _table_import.TableImport, "_process_s3_files", _process_s3_files_as_json, _original_import
)


def import_items_as_json():
    """While active, moto's ImportTable decodes each staged item as JSON (see above)."""
    return _as_json.active()


# ---------------------------------------------------------------- Glue job runs

GlueJob = Callable[[dict[str, str]], object]
_glue_routes: dict[str, GlueJob] = {}
_original_start_job_run = _glue_models.FakeJob.start_job_run
_glue_threads: list[threading.Thread] = []
_glue_patterns_added = False


def _pin_state(run, state: str, error: str | None = None) -> None:
    """Hold a FakeJobRun at `state`, whatever moto's state manager would advance it to."""
    run._transitions = [(state, state)]
    run._status = state
    if error is not None:
        original = type(run).as_dict

        def as_dict(_run=run):
            return {**original(_run), "ErrorMessage": error}

        run.as_dict = as_dict


def _run_job(route: GlueJob, run) -> None:
    try:
        route(dict(run.arguments or {}))
    except Exception as exc:  # the Glue service reports a failed job as the run's state
        _pin_state(run, "FAILED", f"{type(exc).__name__}: {exc}")
    else:
        _pin_state(run, "SUCCEEDED")


def _start_job_run(self, *args, **kwargs) -> str:
    run_id = _original_start_job_run(self, *args, **kwargs)
    route = _glue_routes.get(self.name)
    if route is None:
        return run_id
    (run,) = [r for r in self.job_runs if r.job_run_id == run_id]
    _pin_state(run, "RUNNING")
    th = threading.Thread(target=_run_job, args=(route, run), name=f"glue-{self.name}", daemon=True)
    _glue_threads.append(th)
    th.start()
    return run_id


@contextmanager
def glue_job_routes(routes: dict[str, GlueJob]):
    """While active, a run of a Glue job named in `routes` calls routes[name](arguments) on a
    thread of its own (the job's default arguments updated by the run's); the run is RUNNING
    meanwhile, then SUCCEEDED, or FAILED with the exception as its ErrorMessage. Leaving
    waits for the runs still going."""
    global _glue_patterns_added
    _, sfn_glue, condition = _sfn()
    patterns = sfn_glue._SUPPORTED_INTEGRATION_PATTERNS
    with _lock:
        _glue_routes.update(routes)
        _glue_models.FakeJob.start_job_run = _start_job_run
        if condition.WaitForTaskToken not in patterns:
            patterns.add(condition.WaitForTaskToken)
            _glue_patterns_added = True
    try:
        yield
    finally:
        for th in list(_glue_threads):
            th.join()
        with _lock:
            for name in routes:
                _glue_routes.pop(name, None)
            if not _glue_routes:
                _glue_models.FakeJob.start_job_run = _original_start_job_run
                _glue_threads.clear()
                if _glue_patterns_added:
                    patterns.discard(condition.WaitForTaskToken)
                    _glue_patterns_added = False


# ---------------------------------------------------------------- DynamoDB, S3 and SQS calls

_one_call = threading.RLock()
_serialized = {
    (
        _dynamodb_responses.DynamoHandler,
        "call_action",
    ): _dynamodb_responses.DynamoHandler.call_action,
    (_s3_responses.S3Response, "bucket_response"): _s3_responses.S3Response.bucket_response,
    (_s3_responses.S3Response, "key_response"): _s3_responses.S3Response.key_response,
    (_s3_responses.S3Response, "ambiguous_response"): _s3_responses.S3Response.ambiguous_response,
    **{
        (_SQSBackend, name): getattr(_SQSBackend, name)
        for name in (
            "send_message",
            "send_message_batch",
            "delete_message",
            "delete_message_batch",
            "change_message_visibility",
            "change_message_visibility_batch",
            "purge_queue",
        )
    },
}
_original_receive = _SQSBackend.receive_message


def _one_at_a_time(method: Callable) -> Callable:
    def serialized(*args, **kwargs):
        with _one_call:
            return method(*args, **kwargs)

    serialized.__wrapped__ = method
    return serialized


def _receive_one_look_at_a_time(self, queue_name, count, wait_seconds_timeout, *args, **kwargs):
    """moto's ReceiveMessage, looking under the lock and waiting for messages outside it."""
    deadline = time.monotonic() + (wait_seconds_timeout or 0)
    while True:
        with _one_call:
            got = _original_receive(self, queue_name, count, 0, *args, **kwargs)
        left = deadline - time.monotonic()
        if got or left <= 0:
            return got
        self.get_queue(queue_name).wait_for_messages(min(left, 1.0))


_receive_one_look_at_a_time.__wrapped__ = _original_receive


def _serialize() -> None:
    for (cls, name), method in _serialized.items():
        setattr(cls, name, _one_at_a_time(method))
    _SQSBackend.receive_message = _receive_one_look_at_a_time


def _unserialize() -> None:
    for (cls, name), method in _serialized.items():
        setattr(cls, name, method)
    _SQSBackend.receive_message = _original_receive


_one_at_a_time_patch = _SharedPatch(_serialize, _unserialize)


def one_call_at_a_time():
    """While active, moto's DynamoDB, S3 and SQS handle one call at a time (see above)."""
    return _one_at_a_time_patch.active()


# ---------------------------------------------------------------- waiting for messages


def message_waiter(queue_url: str, region: str) -> Callable[[float], bool]:
    """wait(seconds) -> whether the queue at `queue_url` (in this process's emulator, its
    URL ending in /ACCOUNT/NAME) holds a visible message, waiting up to `seconds` for one to
    be sent."""
    from moto.sqs.models import sqs_backends

    account, name = queue_url.rstrip("/").rsplit("/", 2)[-2:]
    queue = sqs_backends[account][region].get_queue(name)

    def wait(seconds: float) -> bool:
        if queue.messages:
            return True
        queue.wait_for_messages(seconds)
        return bool(queue.messages)

    return wait


# ---------------------------------------------------------------- model loaders

_original_loaders = (botocore.session.create_loader, _moto_utils.create_loader)
_shared_loaders: dict[tuple[str, str | None], object] = {}
# Its own lock: a loader is made while `_lock` is held (hook 1's client for moto).
_loaders_lock = threading.Lock()


def _shared(kind: str, make: Callable) -> Callable:
    def create_loader(*args):
        key = (kind, *args)
        with _loaders_lock:
            if key not in _shared_loaders:
                _shared_loaders[key] = make(*args)
            return _shared_loaders[key]

    return create_loader


def _share_loaders() -> None:
    botocore.session.create_loader = _shared("botocore", _original_loaders[0])
    _moto_utils.create_loader = _shared("moto", _original_loaders[1])


def _own_loaders() -> None:
    botocore.session.create_loader, _moto_utils.create_loader = _original_loaders
    _shared_loaders.clear()


_loaders_patch = _SharedPatch(_share_loaders, _own_loaders)


def shared_model_loaders():
    """While active, botocore Sessions share one Loader per data path, and moto reads its
    models through one Loader of its own (see above)."""
    return _loaders_patch.active()


# ---------------------------------------------------------------- JSONPath

_original_parses: dict = {}  # module -> its own parse, while parsed_json_paths is active


def _json_path_modules() -> tuple:
    defer_moto_batch()
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    return json_path, result_path


def _keep_parses() -> None:
    for module in _json_path_modules():
        _original_parses[module] = module.parse
        module.parse = functools.lru_cache(maxsize=4096)(module.parse)


def _parse_afresh() -> None:
    for module, parse in _original_parses.items():
        module.parse = parse
    _original_parses.clear()


_parses_patch = _SharedPatch(_keep_parses, _parse_afresh)


def parsed_json_paths():
    """While active, moto's Step Functions interpreter parses each JSONPath once (see above)."""
    _json_path_modules()  # imported outside the patch's lock
    return _parses_patch.active()


# ---------------------------------------------------------------- COUNT scans

_original_scan = _dynamodb_responses.DynamoHandler.scan
# What a Scan may hold and still be a plain count of the whole table (see above).
_PLAIN_COUNT = frozenset({"TableName", "Select", "ConsistentRead"})


def _count_at_once(self):
    """moto's Scan, with a plain COUNT of a whole table answered from the table's size."""
    body = self.body  # the request's parameters (moto's call_action sets them)
    if body.get("Select") != "COUNT" or not set(body) <= _PLAIN_COUNT:
        return _original_scan(self)
    count = len(self.dynamodb_backend.get_table(body["TableName"]))
    return _dynamodb_responses.DynamoResult({"Count": count, "ScannedCount": count})


_counts_patch = _SharedPatch.replacing(
    _dynamodb_responses.DynamoHandler, "scan", _count_at_once, _original_scan
)


def counted_scans():
    """While active, a Scan for the COUNT of a whole table is answered at once (see above)."""
    return _counts_patch.active()
