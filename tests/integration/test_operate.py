"""`sluice start` and `sluice status` against a stack deployed in moto (the rehearsal's)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import pytest
from moto import mock_aws
from sluice import cli, operate
from sluice.errors import ContractError, SluiceError
from sluice.manifest import Manifest
from sluice.staging import PageRef

from .cfn_rehearsal import REGION, rehearsal_environment, rehearse

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::")

STACK = "sluice-ops"
PARAMS = {
    "SourceSecretArn": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:shop-AbCdEf",
    "PageSize": "2500",
    "BulkThresholdRows": "9000000",
}


def dynamodb_contract(**defaults) -> dict:
    doc = {
        "version": 1,
        "source": {"database": "shop"},
        "target": {
            "kind": "dynamodb",
            "tables": {"shop": {"partition_key": "PK", "sort_key": "SK"}},
        },
        "tables": [
            {
                "source": "users",
                "key": ["id"],
                "target": {"table": "shop", "partition_key": "USER#{id}", "sort_key": "PROFILE"},
            },
            {
                "source": "orders",
                "key": ["id"],
                "target": {"table": "shop", "partition_key": "ORDER#{id}", "sort_key": "ORDER"},
            },
        ],
    }
    if defaults:
        doc["defaults"] = defaults
    return doc


@contextmanager
def rehearsed(stack: str, params: dict[str, str]) -> Iterator[boto3.session.Session]:
    """A session on moto in which the template stands deployed as `stack` with `params`."""
    with rehearsal_environment(), mock_aws():
        session = boto3.session.Session(region_name=REGION)
        rehearse(session, stack, params)
        yield session


@pytest.fixture
def session():
    with rehearsed(STACK, PARAMS) as session:
        yield session


@pytest.fixture
def stack(session) -> operate.Stack:
    return operate.find_stack(session.client("cloudformation"), STACK)


def test_the_stack_is_found_through_its_outputs(session, stack):
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in session.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0][
            "Outputs"
        ]
    }
    assert stack.state_machine_arn == outputs["StateMachineArn"]
    assert stack.bucket == outputs["StagingBucketName"]
    assert stack.manifest_table == outputs["ManifestTableName"]
    assert stack.dlq_urls == {
        "extract": outputs["ExtractDLQUrl"],
        "transform": outputs["TransformDLQUrl"],
        "load": outputs["LoadDLQUrl"],
    }
    assert (stack.target_kind, stack.page_size, stack.bulk_threshold_rows) == (
        "dynamodb",
        2500,
        9_000_000,
    )
    assert (
        stack.execution_arn("r1")
        == outputs["StateMachineArn"].replace(":stateMachine:", ":execution:") + ":r1"
    )


def test_a_missing_stack_is_reported_with_what_to_do(session):
    with pytest.raises(SluiceError, match="stack nope not found.*sam deploy --guided"):
        operate.find_stack(session.client("cloudformation"), "nope")


def test_a_stack_without_sluice_outputs_is_refused():
    with pytest.raises(SluiceError, match="no output StagingBucketName, ManifestTableName"):
        operate.Stack.from_outputs("other", {"StateMachineArn": "arn:aws:states:x"})


def test_start_uploads_the_contract_with_the_stack_defaults_and_starts_one_execution(
    session, stack
):
    started = operate.start_run(
        stack,
        dynamodb_contract(),
        s3=session.client("s3"),
        stepfunctions=session.client("stepfunctions"),
        run_id="run-0001",
    )

    assert started.run_id == "run-0001"
    assert started.execution_arn == stack.execution_arn("run-0001")
    body = session.client("s3").get_object(Bucket=stack.bucket, Key=started.contract_key)["Body"]
    uploaded = json.loads(body.read())
    assert uploaded["defaults"] == {"page_size": 2500, "bulk_threshold_rows": 9_000_000}
    assert uploaded["tables"] == dynamodb_contract()["tables"]
    desc = session.client("stepfunctions").describe_execution(executionArn=started.execution_arn)
    assert desc["name"] == "run-0001"
    assert json.loads(desc["input"]) == {"contract_key": started.contract_key, "run_id": "run-0001"}
    # The key is under runs/<run id>/, which every worker role may read and which expires.
    assert started.contract_key.startswith("runs/run-0001/")


def test_start_keeps_the_contracts_own_defaults(session, stack):
    started = operate.start_run(
        stack,
        dynamodb_contract(page_size=100),
        s3=session.client("s3"),
        stepfunctions=session.client("stepfunctions"),
    )
    body = session.client("s3").get_object(Bucket=stack.bucket, Key=started.contract_key)["Body"]
    assert json.loads(body.read())["defaults"] == {
        "page_size": 100,
        "bulk_threshold_rows": 9_000_000,
    }
    assert started.run_id in started.execution_arn


def test_start_refuses_a_contract_for_another_target_kind(session, stack):
    doc = {
        "version": 1,
        "source": {"database": "shop"},
        "target": {"kind": "mysql", "database": "shop_copy"},
        "tables": [{"source": "users", "key": ["id"], "target": {"table": "users"}}],
    }
    with pytest.raises(SluiceError, match="TargetKind=dynamodb.*TargetKind=mysql"):
        operate.start_run(
            stack,
            doc,
            s3=session.client("s3"),
            stepfunctions=session.client("stepfunctions"),
        )
    assert session.client("s3").list_objects_v2(Bucket=stack.bucket)["KeyCount"] == 0
    sfn = session.client("stepfunctions")
    assert sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"] == []


def test_start_refuses_an_invalid_contract_naming_each_problem(session, stack):
    doc = dynamodb_contract()
    doc["tables"][0]["key"] = []
    with pytest.raises(ContractError) as err:
        operate.start_run(
            stack, doc, s3=session.client("s3"), stepfunctions=session.client("stepfunctions")
        )
    assert any(p.startswith("$.tables[0].key") for p in err.value.problems)


def test_status_shows_per_table_progress_failed_pages_and_dlq_depths(session, stack):
    run_id = "run-0002"
    manifest = Manifest(session.resource("dynamodb").Table(stack.manifest_table))
    tables = [
        {"table": "users", "target_table": "shop", "pages": 2, "path": "lambda"},
        {"table": "orders", "target_table": "shop", "pages": 4, "path": "lambda"},
    ]
    pages = [(PageRef(run_id, "users", p), {"lo": None, "hi": None}) for p in range(2)] + [
        (PageRef(run_id, "orders", p), {"lo": None, "hi": None}) for p in range(4)
    ]
    manifest.record_plan(run_id, {"target_kind": "dynamodb"}, tables, pages)
    for p in range(2):
        manifest.advance(PageRef(run_id, "users", p), "loaded", {"extracted": 10, "loaded": 10})
    manifest.advance(PageRef(run_id, "orders", 0), "loaded", {"extracted": 7, "loaded": 6})
    manifest.record_failure(PageRef(run_id, "orders", 3), "load", "Boom: throttled", final=True)
    sqs = session.client("sqs")
    sqs.send_message(QueueUrl=stack.dlq_urls["load"], MessageBody="{}")

    status = operate.run_status(
        stack,
        run_id,
        dynamodb=session.resource("dynamodb"),
        sqs=sqs,
        stepfunctions=session.client("stepfunctions"),
    )

    assert (status.pages, status.pages_loaded) == (6, 3)
    assert status.dlq_depths == {"extract": 0, "transform": 0, "load": 1}
    assert status.execution is None  # this run was written straight into the manifest
    text = operate.render_status(status)
    assert text.splitlines()[0] == "Run run-0002: running, 3/6 pages loaded"
    assert f"users{' ' * 19} [{'#' * 24}]     2/2     pages" in text
    assert f"orders{' ' * 18} [{'#' * 6}{'-' * 18}]     1/4     pages" in text
    assert "page 3: FAILED at load after 1 attempts: Boom: throttled" in text
    assert "dead-letter queues: extract 0, transform 0, load 1" in text
    as_json = status.to_dict()
    assert as_json["tables"]["orders"]["failed_pages"][0]["page"] == 3


def test_status_of_an_unknown_run_says_so(session, stack):
    with pytest.raises(SluiceError, match="no run nope on stack sluice-ops"):
        operate.run_status(
            stack,
            "nope",
            dynamodb=session.resource("dynamodb"),
            sqs=session.client("sqs"),
            stepfunctions=session.client("stepfunctions"),
        )


def test_the_cli_starts_a_run_and_shows_its_status(session, stack, tmp_path, capsys):
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(dynamodb_contract()))

    assert cli.main(["start", "--stack", STACK, "--contract", str(path), "--run-id", "cli-1"]) == 0
    out = capsys.readouterr().out
    assert "run id:    cli-1" in out
    assert f"execution: {stack.execution_arn('cli-1')}" in out

    assert cli.main(["status", "--stack", STACK, "--run", "cli-1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run_id"] == "cli-1"
    assert shown["status"]  # the execution's, as Step Functions reports it
    assert shown["dlq_depths"] == {"extract": 0, "transform": 0, "load": 0}

    assert cli.main(["status", "--stack", "missing", "--run", "cli-1"]) == 1
    assert "stack missing not found" in capsys.readouterr().err
