"""The bulk path's stack pieces, which moto's CloudFormation does not create (Glue jobs and
connections: cfn_rehearsal.NOT_CREATED_BY_MOTO), checked in the translated template: the
job's arguments and packaging, the connection on the source secret, and least privilege."""

from __future__ import annotations

import json

import pytest
from sluice.bulk import BulkJob

from .cfn_rehearsal import (
    SOURCE_TEMPLATE,
    fold_conditions,
    rehearsal_environment,
    template_under_test,
    translate,
)

SOURCE_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sluice/source-AbCdEf"
TARGET_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sluice/target-AbCdEf"
DEFAULT = {"SourceSecretArn": SOURCE_SECRET}
VPC = {
    "SourceSecretArn": SOURCE_SECRET,
    "TargetKind": "mysql",
    "TargetSecretArn": TARGET_SECRET,
    "SubnetIds": "subnet-0aaa,subnet-0bbb",
    "SecurityGroupIds": "sg-0ccc",
    "SourceJdbcUrl": "jdbc:mysql://shop-db.internal:3306/shop",
}
ASL = SOURCE_TEMPLATE.parent / "statemachine" / "migration.asl.json"


def cfn(params: dict) -> dict:
    with rehearsal_environment():
        return fold_conditions(translate(template_under_test(), params), params)


@pytest.fixture(scope="module")
def default() -> dict:
    return cfn(DEFAULT)


@pytest.fixture(scope="module")
def vpc() -> dict:
    return cfn(VPC)


def statements(doc: dict, role: str) -> list[dict]:
    out = []
    for policy in doc["Resources"][role]["Properties"]["Policies"]:
        for s in policy["PolicyDocument"]["Statement"]:
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            out.append({"actions": set(actions), "resources": resources})
    return out


def test_every_argument_the_job_needs_comes_from_the_job_or_the_state_machine(default):
    job = default["Resources"]["BulkJob"]["Properties"]
    given = {k.lstrip("-") for k in job["DefaultArguments"]}
    task = json.loads(ASL.read_text())["States"]["BulkTables"]["ItemProcessor"]["States"]["BulkJob"]
    given |= {k.lstrip("-").removesuffix(".$") for k in task["Parameters"]["Arguments"]}
    assert set(BulkJob.ARGUMENTS) <= given
    assert task["Parameters"]["JobName"] == "${BulkJobName}"
    assert task["Resource"] == "arn:aws:states:::glue:startJobRun.sync"
    subs = default["Resources"]["MigrationStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert subs["BulkJobName"] == {"Ref": "BulkJob"}


def test_the_job_runs_the_packaged_script_library_and_driver_from_the_bucket(default):
    job = default["Resources"]["BulkJob"]["Properties"]
    assert job["Command"]["Name"] == "glueetl"
    assert job["Command"]["ScriptLocation"] == {"Fn::Sub": "s3://${StagingBucket}/glue/job.py"}
    args = job["DefaultArguments"]
    assert args["--extra-py-files"] == {"Fn::Sub": "s3://${StagingBucket}/glue/sluice.zip"}
    assert args["--extra-jars"] == {"Fn::Sub": "s3://${StagingBucket}/glue/mariadb-java-client.jar"}
    assert "pyarrow==20.0.0" in args["--additional-python-modules"]
    assert args["--bucket"] == {"Ref": "StagingBucket"}
    assert args["--manifest_table"] == {"Ref": "ManifestTable"}
    assert args["--source_secret_arn"] == {"Ref": "SourceSecretArn"}
    assert "--target_secret_arn" not in args  # DynamoDB target: no target secret
    assert (job["GlueVersion"], job["WorkerType"], job["NumberOfWorkers"]) == (
        {"Ref": "BulkGlueVersion"},
        {"Ref": "BulkWorkerType"},
        {"Ref": "BulkNumberOfWorkers"},
    )
    assert job["Role"] == {"Fn::GetAtt": ["BulkJobRole", "Arn"]}
    assert "Connections" not in job and "BulkSourceConnection" not in default["Resources"]


def test_in_a_vpc_the_job_reaches_the_source_through_a_connection_on_its_secret(vpc):
    conn = vpc["Resources"]["BulkSourceConnection"]["Properties"]["ConnectionInput"]
    assert conn["ConnectionType"] == "JDBC"
    assert conn["ConnectionProperties"] == {
        "JDBC_CONNECTION_URL": {"Ref": "SourceJdbcUrl"},
        "SECRET_ID": {"Ref": "SourceSecretArn"},
    }
    assert conn["PhysicalConnectionRequirements"] == {
        "SubnetId": {"Fn::Select": [0, {"Ref": "SubnetIds"}]},
        "SecurityGroupIdList": {"Ref": "SecurityGroupIds"},
    }
    job = vpc["Resources"]["BulkJob"]["Properties"]
    assert job["Connections"] == {"Connections": [{"Ref": "BulkSourceConnection"}]}
    assert job["DefaultArguments"]["--target_secret_arn"] == {"Ref": "TargetSecretArn"}


@pytest.mark.parametrize("which", ["default", "vpc"])
def test_the_job_role_holds_only_what_the_job_touches(which, request):
    doc = request.getfixturevalue(which)
    found = statements(doc, "BulkJobRole")
    actions = set().union(*(s["actions"] for s in found))
    for s in found:
        if "*" in s["resources"]:
            assert which == "vpc" and all(a.startswith("ec2:Describe") for a in s["actions"]), s
        for a in s["actions"]:
            assert not a.endswith("*"), a
        if any(a.startswith("s3:") for a in s["actions"]) and "s3:ListBucket" not in s["actions"]:
            assert {json.dumps(r) for r in s["resources"]} <= {
                json.dumps({"Fn::Sub": "${StagingBucket.Arn}/glue/*"}),
                json.dumps({"Fn::Sub": "${StagingBucket.Arn}/runs/*"}),
            }, s
    secrets = [s for s in found if "secretsmanager:GetSecretValue" in s["actions"]]
    want = [{"Ref": "SourceSecretArn"}] + ([{"Ref": "TargetSecretArn"}] if which == "vpc" else [])
    assert [r for s in secrets for r in s["resources"]] == want
    assert ("dynamodb:BatchWriteItem" in actions) == (which == "default")
    assert ("glue:GetConnection" in actions) == (which == "vpc")


def test_the_state_machine_may_run_the_job_and_progress_may_fail_its_pages(default):
    sm_role = next(
        lid
        for lid, r in default["Resources"].items()
        if r["Type"] == "AWS::IAM::Role" and lid.startswith("MigrationStateMachine")
    )
    glue = [
        s for s in statements(default, sm_role) if any(a.startswith("glue:") for a in s["actions"])
    ]
    assert glue and glue[0]["actions"] == {
        "glue:StartJobRun",
        "glue:GetJobRun",
        "glue:GetJobRuns",
        "glue:BatchStopJobRun",
    }
    assert "job/${BulkJob}" in json.dumps(glue[0]["resources"])
    progress = set().union(*(s["actions"] for s in statements(default, "ProgressFunctionRole")))
    assert "dynamodb:UpdateItem" in progress
