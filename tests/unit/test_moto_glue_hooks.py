"""The Glue hook of moto internals: job runs executed in-process, their state the job's own.

If a moto upgrade moves `FakeJob.start_job_run` or reshapes `FakeJobRun`'s managed state,
or Step Functions' glue:startJobRun.sync stops polling GetJobRun, these tests fail first.
"""

from __future__ import annotations

import inspect
import json
import threading
import time

import boto3
import moto.glue.models as glue_models
import pytest
from moto import mock_aws
from moto.moto_api._internal.managed_state_model import ManagedState
from sluice.local import moto_hooks
from sluice.local.moto_hooks import glue_job_routes

REGION = "us-east-1"
JOB = "sluice-bulk"


def test_moto_glue_still_has_the_patched_methods_and_state():
    start = glue_models.FakeJob.start_job_run
    assert moto_hooks._original_start_job_run is start
    params = set(inspect.signature(start).parameters)
    assert {"self", "arguments"} <= params, params
    assert issubclass(glue_models.FakeJobRun, ManagedState)
    run = glue_models.FakeJobRun(job_name=JOB, arguments={"--a": "1"})
    assert run._status == "STARTING" and run._transitions  # what _pin_state replaces
    moto_hooks._pin_state(run, "RUNNING")
    for _ in range(3):  # whatever moto's state manager says, a pinned run stays
        assert run.status == "RUNNING"
        run.advance()
    moto_hooks._pin_state(run, "FAILED", "SluiceError: boom")
    assert run.as_dict()["JobRunState"] == "FAILED"
    assert run.as_dict()["ErrorMessage"] == "SluiceError: boom"


@pytest.fixture
def glue(aws_mock):
    client = boto3.client("glue", region_name=REGION)
    client.create_job(
        Name=JOB,
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": "s3://b/glue/job.py"},
        DefaultArguments={"--bucket": "b", "--run_id": "default"},
        ExecutionProperty={"MaxConcurrentRuns": 2},
    )
    return client


def wait_for(client, run_id: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = client.get_job_run(JobName=JOB, RunId=run_id)["JobRun"]
        if run["JobRunState"] not in ("STARTING", "RUNNING"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.02)


def test_a_routed_run_executes_the_job_with_its_arguments_and_succeeds(glue):
    seen, release = [], threading.Event()

    def job(arguments):
        seen.append(arguments)
        release.wait(5)

    with glue_job_routes({JOB: job}):
        run_id = glue.start_job_run(JobName=JOB, Arguments={"--run_id": "r1", "--table": "t"})[
            "JobRunId"
        ]
        assert glue.get_job_run(JobName=JOB, RunId=run_id)["JobRun"]["JobRunState"] == "RUNNING"
        release.set()
        run = wait_for(glue, run_id)
    assert run["JobRunState"] == "SUCCEEDED"
    assert seen == [{"--bucket": "b", "--run_id": "r1", "--table": "t"}]
    assert glue_models.FakeJob.start_job_run is moto_hooks._original_start_job_run


def test_a_job_that_raises_fails_its_run_with_the_error(glue):
    def job(arguments):
        raise RuntimeError("cannot reach the source")

    with glue_job_routes({JOB: job}):
        run_id = glue.start_job_run(JobName=JOB)["JobRunId"]
        run = wait_for(glue, run_id)
    assert run["JobRunState"] == "FAILED"
    assert run["ErrorMessage"] == "RuntimeError: cannot reach the source"


def test_a_job_without_a_route_is_left_to_moto(glue):
    with glue_job_routes({"another-job": lambda a: None}):
        run_id = glue.start_job_run(JobName=JOB)["JobRunId"]
        run = glue.get_job_run(JobName=JOB, RunId=run_id)["JobRun"]
    assert run["JobRunState"] in ("STARTING", "RUNNING", "SUCCEEDED")
    assert "ErrorMessage" not in run


DEFINITION = {
    "StartAt": "Job",
    "States": {
        "Job": {
            "Type": "Task",
            "Resource": "arn:aws:states:::glue:startJobRun.sync",
            "Parameters": {"JobName": JOB, "Arguments": {"--table.$": "$.table"}},
            # As in statemachine/: moto's GetJobRun output holds datetimes that its
            # DescribeExecution cannot serialise.
            "ResultPath": None,
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Caught"}],
            "End": True,
        },
        "Caught": {"Type": "Pass", "End": True},
    },
}


def run_state_machine(table: str) -> dict:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(
        name=f"glue-sync-{table}",
        definition=json.dumps(DEFINITION),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"table": table}))
    deadline = time.monotonic() + 20
    while True:
        desc = sfn.describe_execution(executionArn=execution["executionArn"])
        if desc["status"] != "RUNNING":
            return json.loads(desc.get("output") or "{}")
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_moto_step_functions_glue_service_still_shares_its_pattern_set():
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_glue as sfn_glue,
    )

    service = sfn_glue.StateTaskServiceGlue()
    assert service._supported_integration_patterns is sfn_glue._SUPPORTED_INTEGRATION_PATTERNS


def test_start_job_run_sync_waits_for_the_job_and_sees_its_failure(monkeypatch):
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(k, v)
    ran = []

    def job(arguments):
        time.sleep(0.6)  # longer than one poll of GetJobRun
        ran.append(arguments["--table"])
        if arguments["--table"] == "bad":
            raise ValueError("page 3 failed")

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        boto3.client("glue", region_name=REGION).create_job(
            Name=JOB,
            Role="arn:aws:iam::123456789012:role/glue",
            Command={"Name": "glueetl", "ScriptLocation": "s3://b/glue/job.py"},
        )
        with glue_job_routes({JOB: job}):
            good = run_state_machine("good")
            bad = run_state_machine("bad")
    assert ran == ["good", "bad"]
    assert "failure" not in good
    assert bad["failure"]["Error"] == "States.TaskFailed"
    assert json.loads(bad["failure"]["Cause"])["ErrorMessage"] == "ValueError: page 3 failed"
