"""The one patch of moto internals: Lambda invocations dispatched to in-process callables.

If a moto upgrade moves or reshapes `LambdaFunction.invoke`, these tests fail first.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile

import boto3
import moto.awslambda.models as lambda_models
import pytest
from sluice.local import moto_hooks
from sluice.local.moto_hooks import lambda_routes

REGION = "us-east-1"


def test_moto_lambda_function_still_has_the_patched_invoke_signature():
    invoke = getattr(lambda_models.LambdaFunction, "invoke", None)
    assert invoke is not None, "moto.awslambda.models.LambdaFunction.invoke is gone"
    params = list(inspect.signature(invoke).parameters)
    assert params == ["self", "body", "request_headers", "response_headers"], params
    assert moto_hooks._original is invoke  # the hook wraps the method moto really calls


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "def lambda_handler(event, context):\n    return 'not run'\n")
    return buf.getvalue()


@pytest.fixture
def lambda_client(aws_mock):
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(
        RoleName="sluice-test-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    client = boto3.client("lambda", region_name=REGION)
    for name in ("sluice-plan", "sluice-other"):
        client.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role,
            Handler="app.lambda_handler",
            Code={"ZipFile": _zip()},
        )
    return client


def invoke(client, name: str, event: dict) -> tuple[dict, object]:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return resp, json.loads(resp["Payload"].read())


def test_invoking_a_routed_function_returns_the_callables_result(lambda_client):
    calls = []

    def plan(name, event):
        calls.append((name, event))
        return {"run_id": event["run_id"], "pages": [1, 2, 3], "amount": "1.10"}

    with lambda_routes({"sluice-plan": plan}):
        resp, payload = invoke(lambda_client, "sluice-plan", {"run_id": "r1", "x": [None, True]})

    assert payload == {"run_id": "r1", "pages": [1, 2, 3], "amount": "1.10"}
    assert "FunctionError" not in resp
    assert calls == [("sluice-plan", {"run_id": "r1", "x": [None, True]})]


def test_an_exception_in_the_callable_comes_back_as_a_function_error(lambda_client):
    def plan(name, event):
        raise ValueError("table 'orders' has no key")

    with lambda_routes({"sluice-plan": plan}):
        resp, payload = invoke(lambda_client, "sluice-plan", {})

    assert resp["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "table 'orders' has no key"
    assert isinstance(payload["stackTrace"], list) and payload["stackTrace"]


def test_routes_are_removed_and_moto_restored_when_the_context_exits(lambda_client):
    with (
        lambda_routes({"sluice-plan": lambda n, e: 1}),
        lambda_routes({"sluice-other": lambda n, e: 2}),
    ):
        assert invoke(lambda_client, "sluice-plan", {})[1] == 1
        assert invoke(lambda_client, "sluice-other", {})[1] == 2
        assert lambda_models.LambdaFunction.invoke is moto_hooks._dispatch
    assert lambda_models.LambdaFunction.invoke is moto_hooks._original
    assert moto_hooks._routes == {}


def test_a_function_without_a_route_falls_through_to_moto(lambda_client, monkeypatch):
    seen = []

    def fake_original(self, body, request_headers, response_headers):
        seen.append(self.function_name)
        return b'"from moto"'

    # lambda_routes restores `_original` on exit: make sure moto gets its real method back
    monkeypatch.setattr(lambda_models.LambdaFunction, "invoke", lambda_models.LambdaFunction.invoke)
    monkeypatch.setattr(moto_hooks, "_original", fake_original)
    with lambda_routes({"sluice-plan": lambda n, e: "routed"}):
        assert invoke(lambda_client, "sluice-other", {})[1] == "from moto"
        assert invoke(lambda_client, "sluice-plan", {})[1] == "routed"
    assert seen == ["sluice-other"]


# ---------------------------------------------------------------- ImportTable items

TRICKY = ['say "hi"', "back\\slash", "line\nbreak\ttab", "bell\x07", "café 😀"]


def test_moto_import_still_has_the_replaced_method_and_its_parser():
    import moto.dynamodb.models.table_import as table_import

    method = table_import.TableImport._process_s3_files
    assert moto_hooks._original_import is method
    params = list(inspect.signature(method).parameters)
    assert params == ["self", "s3_backend", "bucket"], params
    # What the replacement repeats: if moto reshapes these calls, re-read its import.
    source = inspect.getsource(method)
    for piece in ("dynamo.create_table(", "s3_backend.list_objects(", "JsonParser.parse("):
        assert piece in source, f"moto's import changed ({piece} is gone): re-check moto_hooks"


def test_moto_s_own_import_parser_still_mangles_escaped_strings():
    """When this fails, moto decodes imported strings itself: drop the second hook."""
    from py_partiql_parser import JsonParser

    lines = [json.dumps({"Item": {"s": {"S": t}}}) for t in TRICKY]
    parsed = [next(iter(JsonParser.parse(original=line)))["Item"]["s"]["S"] for line in lines]
    assert parsed != TRICKY


def _import_tricky_strings(bucket: str, table: str) -> dict:
    import gzip
    import time

    s3 = boto3.client("s3", region_name=REGION)
    ddb = boto3.client("dynamodb", region_name=REGION)
    s3.create_bucket(Bucket=bucket)
    body = "".join(
        json.dumps({"Item": {"PK": {"S": f"K{i}"}, "s": {"S": t}}}) + "\n"
        for i, t in enumerate(TRICKY)
    )
    s3.put_object(Bucket=bucket, Key="in/p1.json.gz", Body=gzip.compress(body.encode()))
    arn = ddb.import_table(
        S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": "in/"},
        InputFormat="DYNAMODB_JSON",
        InputCompressionType="GZIP",
        TableCreationParameters={
            "TableName": table,
            "AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )["ImportTableDescription"]["ImportArn"]
    for _ in range(100):
        desc = ddb.describe_import(ImportArn=arn)["ImportTableDescription"]
        if desc["ImportStatus"] != "IN_PROGRESS":
            break
        time.sleep(0.05)
    items = ddb.scan(TableName=table)["Items"]
    return {"desc": desc, "strings": {i["PK"]["S"]: i["s"]["S"] for i in items}}


def test_with_the_hook_an_import_decodes_every_string_as_dynamodb_does(aws_mock):
    with moto_hooks.import_items_as_json():
        got = _import_tricky_strings("hook-bucket", "hooked")
        assert moto_hooks._table_import.TableImport._process_s3_files is (
            moto_hooks._process_s3_files_as_json
        )
    assert moto_hooks._table_import.TableImport._process_s3_files is moto_hooks._original_import
    desc = got["desc"]
    assert (desc["ImportStatus"], desc["ImportedItemCount"], desc["ErrorCount"]) == (
        "COMPLETED",
        len(TRICKY),
        0,
    )
    assert got["strings"] == {f"K{i}": t for i, t in enumerate(TRICKY)}


def test_step_functions_lambda_client_is_made_once_while_routes_are_active(aws_mock):
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
        lambda_eval_utils,
    )

    made = lambda_eval_utils.boto_client_for
    params = list(inspect.signature(made).parameters)
    assert params == ["region", "service", "state_credentials"], params
    with lambda_routes({"some-function": lambda name, event: None}):
        assert moto_hooks._original_client_for is made  # the function moto really calls
        first = lambda_eval_utils.boto_client_for(REGION, "lambda", None)
        again = lambda_eval_utils.boto_client_for(region=REGION, service="lambda")
        assert first is again
        assert lambda_eval_utils.boto_client_for(REGION, "s3") is not first
    assert lambda_eval_utils.boto_client_for is made  # restored afterwards
    assert moto_hooks._clients == {}


# ---------------------------------------------------------------- one call at a time


def _overlap(monkeypatch, first: tuple, second: tuple, call_first, call_second) -> bool:
    """Whether moto lets `call_second()` (which reaches the method `second`, a (class, name))
    into its backend while a `call_first()` on another thread (which reaches `first`) is
    still inside it. The first call waits there up to 1 s for the second to arrive."""
    inside, arrived = threading.Event(), threading.Event()
    seen: list[bool] = []
    (first_cls, first), (second_cls, second) = first, second
    original_first, original_second = getattr(first_cls, first), getattr(second_cls, second)

    def waiting_first(self, *args, **kwargs):
        inside.set()
        seen.append(arrived.wait(timeout=1))
        return original_first(self, *args, **kwargs)

    def arriving_second(self, *args, **kwargs):
        arrived.set()
        return original_second(self, *args, **kwargs)

    monkeypatch.setattr(first_cls, first, waiting_first)
    monkeypatch.setattr(second_cls, second, arriving_second)
    errors: list[Exception] = []

    def run_first() -> None:
        try:
            call_first()
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=run_first)
    thread.start()
    assert inside.wait(timeout=10), "the first call never reached the backend"
    call_second()
    thread.join()
    assert not errors, errors[0]
    return seen == [True]


def _create_table(client, name: str, *key: tuple[str, str]) -> None:
    """A table keyed by `key`: (name, type) of its partition key, then of its sort key."""
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": n, "KeyType": kind}
            for (n, _), kind in zip(key, ("HASH", "RANGE"), strict=False)
        ],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in key],
        BillingMode="PAY_PER_REQUEST",
    )


def _manifest_calls():
    client = boto3.client("dynamodb", region_name=REGION)
    _create_table(client, "manifest", ("pk", "S"), ("sk", "S"))
    key = {"pk": {"S": "RUN#r"}, "sk": {"S": "PAGE#000001"}}
    client.put_item(TableName="manifest", Item=key)

    def query():  # a progress poll
        client.query(
            TableName="manifest",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "RUN#r"}},
        )

    def update():  # a page's load recorded, adding attributes to the item
        client.update_item(
            TableName="manifest",
            Key=key,
            UpdateExpression="SET loaded = :n",
            ExpressionAttributeValues={":n": {"N": "16"}},
        )

    return query, update


def _staging_calls():
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="staging")

    def list_pages():
        s3.list_objects_v2(Bucket="staging", Prefix="pages/")

    def put_page():
        s3.put_object(Bucket="staging", Key="pages/000001.parquet", Body=b"x")

    return list_pages, put_page


def test_moto_lets_a_query_and_an_update_into_dynamodb_at_once(aws_mock, monkeypatch):
    """Why hook 4 exists: moto's DynamoDB holds no lock, and a Query deep-copying an item
    while an UpdateItem adds to it fails ("dictionary changed size during iteration", as a
    local run's progress poll did in CI). When this fails, moto may lock by itself."""
    from moto.dynamodb.models import DynamoDBBackend

    query, update = _manifest_calls()
    assert _overlap(
        monkeypatch, (DynamoDBBackend, "query"), (DynamoDBBackend, "update_item"), query, update
    )


def test_with_the_hook_a_dynamodb_update_waits_for_a_query_in_progress(aws_mock, monkeypatch):
    from moto.dynamodb.models import DynamoDBBackend

    query, update = _manifest_calls()
    with moto_hooks.one_call_at_a_time():
        overlapped = _overlap(
            monkeypatch, (DynamoDBBackend, "query"), (DynamoDBBackend, "update_item"), query, update
        )
    assert not overlapped


def test_with_the_hook_an_s3_put_waits_for_a_listing_in_progress(aws_mock, monkeypatch):
    from moto.s3.models import S3Backend

    list_pages, put_page = _staging_calls()
    assert _overlap(
        monkeypatch, (S3Backend, "list_objects"), (S3Backend, "put_object"), list_pages, put_page
    )
    with moto_hooks.one_call_at_a_time():
        overlapped = _overlap(
            monkeypatch,
            (S3Backend, "list_objects"),
            (S3Backend, "put_object"),
            list_pages,
            put_page,
        )
    assert not overlapped


def _queue_calls():
    """(receive, delete): a ReceiveMessage that looks at a visible message, and a
    DeleteMessage of another, received before (as two load workers on one queue do)."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="stage")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="page 1")
    (first,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"]
    sqs.send_message(QueueUrl=url, MessageBody="page 2")

    def receive():
        (got,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"]
        assert got["Body"] == "page 2"

    def delete():
        sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])

    return receive, delete


def test_with_the_hook_an_sqs_delete_waits_for_a_receive_in_progress(aws_mock, monkeypatch):
    """moto's ReceiveMessage walks the queue's in-flight set that a DeleteMessage takes from
    ("Set changed size during iteration"): without the hook they overlap, with it not."""
    from moto.sqs.models import Queue, SQSBackend

    looking = (SQSBackend, "is_message_valid_based_on_retention_period")  # inside the receive
    deleting = (Queue, "delete_message")
    receive, delete = _queue_calls()
    assert _overlap(monkeypatch, looking, deleting, receive, delete)
    monkeypatch.undo()
    receive, delete = _queue_calls()
    with moto_hooks.one_call_at_a_time():
        overlapped = _overlap(monkeypatch, looking, deleting, receive, delete)
    assert not overlapped


def test_with_the_hook_a_long_poll_waits_outside_the_lock_and_wakes_on_a_send(aws_mock):
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="stage")["QueueUrl"]
    with moto_hooks.one_call_at_a_time():
        sender = threading.Timer(0.3, lambda: sqs.send_message(QueueUrl=url, MessageBody="p"))
        started = time.monotonic()
        sender.start()  # a send takes the lock: were the poll holding it, this would stall
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20).get("Messages", [])
        sender.join()
        assert [m["Body"] for m in got] == ["p"]
        assert time.monotonic() - started < 10  # woken by the send, not the 20 s running out
        assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []) == []


def test_leaving_the_hook_restores_moto_s_methods():
    from moto.dynamodb.responses import DynamoHandler
    from moto.s3.responses import S3Response

    before = (DynamoHandler.call_action, S3Response.key_response)
    with moto_hooks.one_call_at_a_time(), moto_hooks.one_call_at_a_time():
        assert DynamoHandler.call_action.__wrapped__ is before[0]
        assert S3Response.key_response.__wrapped__ is before[1]
    assert (DynamoHandler.call_action, S3Response.key_response) == before
    from moto.sqs.models import SQSBackend

    assert SQSBackend.receive_message is moto_hooks._original_receive
    assert not hasattr(SQSBackend.delete_message, "__wrapped__")


# ---------------------------------------------------------------- waiting for messages


def test_moto_queues_still_have_what_the_message_waiter_uses():
    from moto.sqs.models import Queue

    assert callable(getattr(Queue, "wait_for_messages", None)), "Queue.wait_for_messages is gone"
    assert isinstance(getattr(Queue, "messages", None), property), "Queue.messages is gone"


def test_a_message_waiter_waits_for_a_send_and_wakes_on_it(aws_mock):
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="stage")["QueueUrl"]
    wait = moto_hooks.message_waiter(url, REGION)

    assert wait(0.05) is False  # nothing sent: it gives up after its time

    sender = threading.Timer(0.2, lambda: sqs.send_message(QueueUrl=url, MessageBody="page"))
    started = time.monotonic()
    sender.start()
    try:
        assert wait(30) is True
    finally:
        sender.join()
    assert time.monotonic() - started < 10  # woken by the send, not by the 30 s running out

    assert wait(0) is True  # still there until received
    (msg,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"]
    assert msg["Body"] == "page"
    assert wait(0.05) is False  # in flight: not visible


# ---------------------------------------------------------------- model loaders


def test_while_shared_sessions_and_moto_read_each_model_through_one_loader():
    import botocore.session
    from moto.core import utils as moto_utils
    from moto.core.loaders import Loader as MotoLoader

    def loaders():
        a, b = botocore.session.Session(), botocore.session.Session()
        return a.get_component("data_loader"), b.get_component("data_loader")

    first, second = loaders()
    assert first is not second  # botocore's own way: a loader per session
    with moto_hooks.shared_model_loaders():
        first, second = loaders()
        assert first is second
        assert moto_utils.create_loader() is moto_utils.create_loader()
        assert isinstance(moto_utils.create_loader(), MotoLoader)  # moto's extras kept
        model = first.load_service_model("sqs", "service-2")
        assert second.load_service_model("sqs", "service-2") is model  # decoded once
        sqs = boto3.Session(region_name=REGION).client("sqs")
        assert sqs.meta.service_model.service_name == "sqs"
    first, second = loaders()
    assert first is not second  # restored
    assert moto_utils.create_loader() is not moto_utils.create_loader()


def test_moto_s_lambda_client_is_made_while_both_hooks_are_active():
    """Hook 1 makes moto's client under its lock; hook 6 makes the new session's loader: a
    lock of its own, or this deadlocks (it did, in a whole local run). In a process of its
    own, so that a deadlock fails the test instead of hanging it."""
    script = """
import boto3
from moto import mock_aws
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from sluice.local import moto_hooks

with mock_aws(), moto_hooks.shared_model_loaders():
    with moto_hooks.lambda_routes({"some-function": lambda name, event: None}):
        boto3.DEFAULT_SESSION = None  # the client makes a new session
        client = lambda_eval_utils.boto_client_for("us-east-1", "lambda")
print(client.meta.service_model.service_name)
"""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        pytest.fail("making moto's Lambda client with both hooks active deadlocked")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "lambda"


def _fresh_python(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )


def test_moto_s_step_functions_interpreter_still_runs_the_batch_package_without_hook_7():
    """When this fails, moto's interpreter no longer imports Batch's models (and EC2's) with
    it, and hook 7 can go."""
    done = _fresh_python(
        "import sys\n"
        "import moto.stepfunctions.parser.models\n"
        "print('moto.batch.models' in sys.modules, 'moto.ec2.models' in sys.modules)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


def test_with_hook_7_the_interpreter_imports_without_batch_and_batch_still_works_whole():
    script = """
import sys
import boto3
from sluice.local import moto_hooks

moto_hooks.defer_moto_batch()
import moto.stepfunctions.parser.models
from moto.batch.utils import JobStatus
print("after the interpreter:", "moto.batch.models" in sys.modules, "moto.ec2" in sys.modules)

from moto import mock_aws
from moto.backends import get_backend
with mock_aws():
    backends = get_backend("batch")  # moto asks the package for batch_backends
    import moto.batch
    envs = boto3.client("batch", region_name="us-east-1").describe_compute_environments()
print("after Batch is used:", "moto.batch.models" in sys.modules, "moto.ec2" in sys.modules)
print(backends is moto.batch.batch_backends, moto.batch.utils.JobStatus is JobStatus)
print(envs["computeEnvironments"])
"""
    done = _fresh_python(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "after the interpreter: False False",
        "after Batch is used: True True",
        "True True",
        "[]",
    ]


def test_hook_7_runs_a_deferred_init_once_while_other_threads_wait_and_again_after_a_failure(
    tmp_path, monkeypatch
):
    """The deferral on a package of the test's own: its submodules import without its
    `__init__`; three threads' first use waits for one run of a slow `__init__`; an
    `__init__` that raised runs again on the next use."""
    pkg = tmp_path / "deferred_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import time\n"
        "from . import runs\n"
        "runs.count += 1\n"
        "if runs.count == 1:\n"
        "    raise RuntimeError('first init fails')\n"
        "time.sleep(0.3)\n"
        "VALUE = runs.count\n"
    )
    (pkg / "runs.py").write_text("count = 0\n")
    (pkg / "util.py").write_text("CONSTANT = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("deferred_pkg", "deferred_pkg.runs", "deferred_pkg.util"):
        monkeypatch.delitem(sys.modules, name, raising=False)

    moto_hooks._package_unrun_until_used("deferred_pkg")
    from deferred_pkg.util import CONSTANT

    assert CONSTANT == 7 and "deferred_pkg.runs" not in sys.modules  # __init__ not run
    import deferred_pkg

    with pytest.raises(RuntimeError, match="first init fails"):
        getattr(deferred_pkg, "VALUE")  # noqa: B009 - the attribute access is the test
    seen: list = []

    def use() -> None:
        seen.append(deferred_pkg.VALUE)

    threads = [threading.Thread(target=use) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [2, 2, 2]  # one more run of __init__, which the other threads waited for
    assert sys.modules["deferred_pkg.runs"].count == 2
    assert "__getattr__" not in vars(deferred_pkg)


# ---------------------------------------------------------------- JSONPath parsed once


def test_moto_s_interpreter_still_parses_a_json_path_anew_each_time_without_hook_8():
    """When this fails, moto keeps parsed JSONPaths itself and hook 8 can go."""
    json_path, result_path = moto_hooks._json_path_modules()
    for module in (json_path, result_path):
        assert module.parse("$.a.b") is not module.parse("$.a.b"), module.__name__


def test_with_hook_8_each_path_is_parsed_once_and_evaluates_as_before():
    from jsonpath_ng.exceptions import JsonPathParserError
    from moto.stepfunctions.parser.asl.component.common.path.result_path import ResultPath

    json_path, result_path = moto_hooks._json_path_modules()
    own = json_path.parse, result_path.parse
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    before = [json_path.extract_json(p, doc) for p in ("$.a.b", "$.a.b[1]", "$.c", "$")]
    with moto_hooks.parsed_json_paths():
        with moto_hooks.parsed_json_paths():  # nested users share the one patch
            assert json_path.parse("$.a.b") is json_path.parse("$.a.b")
            assert result_path.parse("$.r") is result_path.parse("$.r")
            hits = json_path.parse.cache_info().hits
            after = [json_path.extract_json(p, doc) for p in ("$.a.b", "$.a.b[1]", "$.c", "$")]
            # what the interpreter calls goes through the kept parse: "$.a.b" was parsed above
            assert json_path.parse.cache_info().hits == hits + 1
            # ResultPath writes into each state's input through the same parsed expression
            outputs = []
            for value in (1, 2):
                env = _result_env({"keep": True}, value)
                ResultPath("$.r")._eval_body(env)
                outputs.append(env.stack.pop())
            assert result_path.parse.cache_info().hits == 3  # "$.r": twice above, twice here
        assert json_path.parse is not own[0]  # still patched for the outer user
        for _ in range(2):  # a bad path fails every time: a failed parse is not kept
            with pytest.raises(JsonPathParserError, match="Parse error at 1:1"):
                json_path.extract_json("$$..[", doc)
    assert after == before == [[1, 2], 2, "x", doc]
    assert outputs == [{"keep": True, "r": 1}, {"keep": True, "r": 2}]
    assert (json_path.parse, result_path.parse) == own  # restored
    assert moto_hooks._original_parses == {}


def _result_env(state_input: dict, result):
    """The two things ResultPath reads of an interpreter environment: the state's input and
    the stack holding the task's result."""

    class States:
        def get_input(self):
            return dict(state_input)

    class Env:
        states = States()
        stack = [result]

    return Env()


# ---------------------------------------------------------------- hook 9: COUNT scans


def _paged_table(dynamo, name: str, items: int, sort_key: bool = True) -> None:
    """A table whose items (about 2 kB each) take several of a Scan's 1 MB pages; keyed by PK
    and SK, or by PK alone."""
    _create_table(dynamo, name, ("PK", "S"), *([("SK", "N")] if sort_key else []))
    table = boto3.resource("dynamodb", region_name=REGION).Table(name)
    with table.batch_writer() as w:
        for i in range(items):
            key = {"PK": f"P#{i % 7}", "SK": i} if sort_key else {"PK": f"P#{i}"}
            w.put_item(Item={**key, "pad": "x" * 2000, "odd": i % 2})


def _scan_pages(dynamo, **kwargs) -> list[dict]:
    pages = []
    while True:
        resp = dynamo.scan(**kwargs)
        pages.append({k: resp[k] for k in ("Count", "ScannedCount")})
        if "LastEvaluatedKey" not in resp:
            return pages
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def test_moto_still_has_the_scan_hook_9_replaces():
    from moto.dynamodb import responses

    assert moto_hooks._original_scan is responses.DynamoHandler.scan
    assert "LastEvaluatedKey" in inspect.getsource(responses.DynamoHandler.scan)


def test_with_hook_9_a_count_of_a_whole_table_comes_in_one_response_with_moto_s_total(aws_mock):
    dynamo = boto3.client("dynamodb", region_name=REGION)
    _paged_table(dynamo, "counted", 1200)
    count = {"TableName": "counted", "Select": "COUNT"}
    own = _scan_pages(dynamo, **count)
    odd = {
        **count,
        "FilterExpression": "odd = :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
    own_odd = _scan_pages(dynamo, **odd)
    own_limited = _scan_pages(dynamo, **count, Limit=500)
    own_segment = _scan_pages(dynamo, **count, Segment=0, TotalSegments=2)
    assert len(own) > 1  # moto pages it: the hook must give the same total in one
    with moto_hooks.counted_scans():
        hooked = _scan_pages(dynamo, **count)
        hooked_consistent = _scan_pages(dynamo, **count, ConsistentRead=True)
        # Anything that narrows or pages the scan is moto's own, page by page.
        hooked_odd = _scan_pages(dynamo, **odd)
        limited = _scan_pages(dynamo, **count, Limit=500)
        segment = _scan_pages(dynamo, **count, Segment=0, TotalSegments=2)
        items = _scan_pages(dynamo, TableName="counted")
        with pytest.raises(dynamo.exceptions.ResourceNotFoundException):
            dynamo.scan(TableName="missing", Select="COUNT")
    total = sum(p["Count"] for p in own)
    assert total == 1200
    assert hooked == hooked_consistent == [{"Count": 1200, "ScannedCount": 1200}]
    assert hooked_odd == own_odd and sum(p["Count"] for p in own_odd) == 600
    assert limited == own_limited and sum(p["Count"] for p in limited) == 1200
    assert segment == own_segment and 0 < sum(p["Count"] for p in segment) < 1200
    assert sum(p["Count"] for p in items) == 1200 and len(items) == len(own)
    from moto.dynamodb import responses

    assert responses.DynamoHandler.scan is moto_hooks._original_scan  # restored


def test_with_hook_9_a_table_keyed_by_its_partition_key_alone_counts_alike(aws_mock):
    dynamo = boto3.client("dynamodb", region_name=REGION)
    _paged_table(dynamo, "by_pk", 700, sort_key=False)
    own = _scan_pages(dynamo, TableName="by_pk", Select="COUNT")
    with moto_hooks.counted_scans():
        hooked = _scan_pages(dynamo, TableName="by_pk", Select="COUNT")
    assert len(own) > 1 and sum(p["Count"] for p in own) == 700
    assert hooked == [{"Count": 700, "ScannedCount": 700}]
