"""Deploy rehearsal: the built template, translated by samtranslator, created in moto's
CloudFormation, and the wiring read back from the emulated services.

What moto cannot create or apply (cfn_rehearsal.NOT_CREATED_BY_MOTO and NOT_APPLIED_BY_MOTO)
is checked in the translated CloudFormation template instead, and
test_moto_skips_exactly_the_resource_types_listed fails when a moto upgrade changes that.
"""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from sluice.local.template import Template
from sluice.staging import EXTRACTED, SUFFIX, TRANSFORMED

from .cfn_rehearsal import (
    ACCOUNT,
    NOT_CREATED_BY_MOTO,
    REGION,
    SOURCE_TEMPLATE,
    rehearsal_environment,
    rehearse,
    template_under_test,
)

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::")

SOURCE_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:sluice/source-AbCdEf"
TARGET_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:sluice/target-AbCdEf"
DEFAULT_STACK = ("sluice", {"SourceSecretArn": SOURCE_SECRET})
# The other shape a user deploys: a MySQL target, workers in a VPC, e-mail notifications.
VPC_STACK = (
    "sluice-vpc",
    {
        "SourceSecretArn": SOURCE_SECRET,
        "TargetKind": "mysql",
        "TargetSecretArn": TARGET_SECRET,
        "SubnetIds": "subnet-0aaa,subnet-0bbb",
        "SecurityGroupIds": "sg-0ccc",
        "NotificationEmail": "dba@example.com",
        "LoadConcurrency": "4",
        "SourceJdbcUrl": "jdbc:mysql://shop-db.internal:3306/shop",
    },
)
ASL = Path(SOURCE_TEMPLATE).parent / "statemachine" / "migration.asl.json"
STAGES = {
    "ExtractFunction": "ExtractQueue",
    "TransformFunction": "TransformQueue",
    "LoadFunction": "LoadQueue",
}
FUNCTIONS = (
    "PlanFunction",
    "ExtractFunction",
    "TransformFunction",
    "LoadFunction",
    "ProgressFunction",
    "VerifyFunction",
    "ImportFunction",
)


class Deployed:
    """One rehearsed stack: its translated template, outputs and physical resource ids."""

    def __init__(self, session, name: str, params: dict[str, str]):
        self.session, self.name, self.params = session, name, params
        self.cfn, stack = rehearse(session, name, params)
        self.status = stack["StackStatus"]
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        summaries = session.client("cloudformation").list_stack_resources(StackName=name)[
            "StackResourceSummaries"
        ]
        self.physical = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in summaries
            if r.get("LogicalResourceId")
        }

    def client(self, service: str):
        return self.session.client(service)

    def props(self, lid: str) -> dict:
        return self.cfn["Resources"][lid]["Properties"]

    def of_type(self, type_: str) -> dict[str, dict]:
        return {k: v for k, v in self.cfn["Resources"].items() if v["Type"] == type_}

    def queue_arn(self, lid: str) -> str:
        url = self.physical[lid]
        return self.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    def function(self, lid: str) -> dict:
        return self.client("lambda").get_function_configuration(FunctionName=self.physical[lid])


@pytest.fixture(scope="module")
def aws():
    """moto for the whole module (one deploy per stack shape), its process state restored."""
    with rehearsal_environment(), mock_aws():
        yield boto3.session.Session(
            region_name=REGION, aws_access_key_id="rehearsal", aws_secret_access_key="rehearsal"
        )


@pytest.fixture(scope="module")
def stack(aws) -> Deployed:
    return Deployed(aws, *DEFAULT_STACK)


@pytest.fixture(scope="module")
def vpc_stack(aws) -> Deployed:
    return Deployed(aws, *VPC_STACK)


# ---------------------------------------------------------------- what was deployed


def test_rehearsal_deploys_the_built_template_in_ci():
    t = template_under_test()
    if os.environ.get("CI", "").lower() == "true":
        assert t.built, f"CI runs `make build` before the tests, but the rehearsal used {t.note}"
    assert t.doc["Transform"] == "AWS::Serverless-2016-10-31"


@pytest.mark.parametrize("which", ["stack", "vpc_stack"])
def test_stack_is_created_with_every_output(which, request):
    st = request.getfixturevalue(which)
    assert st.status == "CREATE_COMPLETE"
    assert set(st.outputs) >= {
        "StateMachineArn",
        "StagingBucketName",
        "ManifestTableName",
        "ExtractQueueUrl",
        "TransformQueueUrl",
        "LoadQueueUrl",
        "ExtractDLQUrl",
        "TransformDLQUrl",
        "LoadDLQUrl",
        "RunNotificationTopicArn",
    }
    assert st.outputs["StagingBucketName"] == f"sluice-{ACCOUNT}-{REGION}-{st.name}"
    assert st.outputs["StateMachineArn"].endswith(f":stateMachine:{st.name}-migration")
    for stage in ("Extract", "Transform", "Load"):
        assert st.outputs[f"{stage}QueueUrl"] == st.physical[f"{stage}Queue"]
        assert st.outputs[f"{stage}DLQUrl"] == st.physical[f"{stage}DLQ"]
    assert st.outputs["TargetKind"] == st.params.get("TargetKind", "dynamodb")


def test_moto_skips_exactly_the_resource_types_listed(stack, vpc_stack):
    """The rehearsal's list of what moto does not create is true (and stays true)."""
    for type_ in NOT_CREATED_BY_MOTO:
        lids = set(vpc_stack.of_type(type_))  # the stack shape that declares every type
        assert lids, f"the template has no {type_}"
        assert not lids & set(vpc_stack.physical), f"moto now creates {type_}: check it in moto"
        lids = set(stack.of_type(type_))
        assert not lids & set(stack.physical), f"moto now creates {type_}: check it in moto"
    created = {
        "AWS::Lambda::Function",
        "AWS::Lambda::EventSourceMapping",
        "AWS::SQS::Queue",
        "AWS::S3::Bucket",
        "AWS::DynamoDB::Table",
        "AWS::StepFunctions::StateMachine",
        "AWS::IAM::Role",
        "AWS::SNS::Topic",
        "AWS::Events::Rule",
        "AWS::Logs::LogGroup",
        "AWS::CloudWatch::Dashboard",
    }
    for type_ in created:
        assert set(stack.of_type(type_)) <= set(stack.physical), type_


# ---------------------------------------------------------------- functions


def test_every_function_has_the_same_environment_naming_the_deployed_resources(stack):
    expected = {
        "POWERTOOLS_SERVICE_NAME": "sluice",
        "POWERTOOLS_METRICS_NAMESPACE": "Sluice",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "SLUICE_BUCKET": stack.outputs["StagingBucketName"],
        "SLUICE_MANIFEST_TABLE": stack.outputs["ManifestTableName"],
        "SLUICE_EXTRACT_QUEUE_URL": stack.outputs["ExtractQueueUrl"],
        "SLUICE_EXTRACT_DLQ_URL": stack.outputs["ExtractDLQUrl"],
        "SLUICE_TRANSFORM_DLQ_URL": stack.outputs["TransformDLQUrl"],
        "SLUICE_LOAD_DLQ_URL": stack.outputs["LoadDLQUrl"],
        "SLUICE_MAX_RECEIVE_COUNT": "3",
        "SLUICE_LOAD_CONCURRENCY": "10",  # LoadConcurrency's default
        "SLUICE_POLL_SECONDS": "15",
        "SLUICE_CREATE_MISSING_TABLES": "false",
        "SLUICE_SOURCE_SECRET_ARN": SOURCE_SECRET,
        "SLUICE_TARGET_SECRET_ARN": "",
    }
    declared = Template.load(SOURCE_TEMPLATE).functions
    for lid in FUNCTIONS:
        fn = stack.function(lid)
        # moto hands a Number parameter through as a number; Lambda keeps strings.
        env = {k: str(v) for k, v in fn["Environment"]["Variables"].items()}
        assert env == expected, lid
        assert set(expected) == set(declared[lid].environment), lid
        assert (fn["Runtime"], fn["Handler"]) == ("python3.11", "app.lambda_handler"), lid
    timeouts = {lid: stack.function(lid)["Timeout"] for lid in FUNCTIONS}
    assert timeouts == {
        "PlanFunction": 900,
        "ExtractFunction": 300,
        "TransformFunction": 300,
        "LoadFunction": 300,
        "ProgressFunction": 60,
        "VerifyFunction": 900,
        "ImportFunction": 900,
    }


def test_functions_trace_log_to_one_group_and_use_the_layers(stack):
    # moto does not apply these: checked in the translated template.
    layers = sorted(stack.of_type("AWS::Lambda::LayerVersion"))
    assert len(layers) == 2  # the library, and the user's transforms (contracts/)
    for lid in FUNCTIONS:
        p = stack.props(lid)
        assert p["TracingConfig"] == {"Mode": "Active"}, lid
        assert p["LoggingConfig"] == {"LogGroup": {"Ref": "FunctionLogGroup"}}, lid
        assert sorted(x["Ref"] for x in p["Layers"]) == layers, lid
    groups = {
        g["logGroupName"]: g.get("retentionInDays")
        for g in stack.client("logs").describe_log_groups()["logGroups"]
    }
    assert groups[f"/sluice/{stack.name}/functions"] == 365
    assert groups[f"/aws/vendedlogs/states/{stack.name}-migration"] == 365


def test_workers_run_in_the_vpc_only_when_subnets_are_given(stack, vpc_stack):
    for lid in FUNCTIONS:
        assert not stack.function(lid).get("VpcConfig", {}).get("SubnetIds"), lid
        vpc = vpc_stack.function(lid)["VpcConfig"]
        assert vpc["SubnetIds"] == ["subnet-0aaa", "subnet-0bbb"], lid
        assert vpc["SecurityGroupIds"] == ["sg-0ccc"], lid


# ---------------------------------------------------------------- queues and event sources


def test_each_stage_queue_feeds_its_function_with_partial_batch_failures(stack, vpc_stack):
    expected = {
        "ExtractFunction": (1, 10),  # batch size, maximum concurrency (ExtractConcurrency)
        "TransformFunction": (5, None),
        "LoadFunction": (5, 10),  # LoadConcurrency
    }
    for st, load_concurrency in ((stack, 10), (vpc_stack, 4)):
        mappings = st.client("lambda").list_event_source_mappings()["EventSourceMappings"]
        for lid, queue in STAGES.items():
            fn_arn = st.function(lid)["FunctionArn"]
            (m,) = [m for m in mappings if m["FunctionArn"] == fn_arn]
            batch, concurrency = expected[lid]
            if lid == "LoadFunction":
                concurrency = load_concurrency
            assert m["EventSourceArn"] == st.queue_arn(queue), lid
            assert m["BatchSize"] == batch, lid
            assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"], lid
            assert m.get("ScalingConfig", {}).get("MaximumConcurrency") == concurrency, lid
            assert m["State"] == "Enabled", lid
        mapped = {m["FunctionArn"] for m in mappings}
        for lid in ("PlanFunction", "ProgressFunction", "VerifyFunction", "ImportFunction"):
            assert st.function(lid)["FunctionArn"] not in mapped, lid


def test_extract_concurrency_caps_source_connections_without_throttling(stack):
    lam = stack.client("lambda")
    reserved = lam.get_function_concurrency(FunctionName=stack.physical["ExtractFunction"])
    assert reserved["ReservedConcurrentExecutions"] == 10
    # The event source polls no more than may run, so no delivery is throttled (a throttled
    # delivery counts toward maxReceiveCount).
    mappings = lam.list_event_source_mappings(FunctionName=stack.physical["ExtractFunction"])
    assert mappings["EventSourceMappings"][0]["ScalingConfig"]["MaximumConcurrency"] == 10


def test_every_stage_queue_redrives_to_its_own_dead_letter_queue(stack):
    sqs = stack.client("sqs")
    for queue in STAGES.values():
        dlq = queue.replace("Queue", "DLQ")
        attrs = sqs.get_queue_attributes(QueueUrl=stack.physical[queue], AttributeNames=["All"])[
            "Attributes"
        ]
        assert json.loads(attrs["RedrivePolicy"]) == {
            "deadLetterTargetArn": stack.queue_arn(dlq),
            "maxReceiveCount": 3,
        }, queue
        assert attrs["SqsManagedSseEnabled"] == "true", queue
        dlq_attrs = sqs.get_queue_attributes(QueueUrl=stack.physical[dlq], AttributeNames=["All"])[
            "Attributes"
        ]
        assert "RedrivePolicy" not in dlq_attrs, dlq
        assert dlq_attrs["MessageRetentionPeriod"] == str(14 * 24 * 3600), dlq
        assert dlq_attrs["SqsManagedSseEnabled"] == "true", dlq


def test_visibility_timeout_is_at_least_six_times_the_consuming_function_timeout(stack):
    sqs = stack.client("sqs")
    for lid, queue in STAGES.items():
        visibility = int(
            sqs.get_queue_attributes(
                QueueUrl=stack.physical[queue], AttributeNames=["VisibilityTimeout"]
            )["Attributes"]["VisibilityTimeout"]
        )
        assert visibility >= 6 * stack.function(lid)["Timeout"], (queue, visibility)


def test_s3_notifications_send_each_stage_suffix_to_the_next_stage_queue(stack):
    # moto does not apply a bucket's NotificationConfiguration from a template: checked in the
    # translated template, against the deployed queues.
    (bucket,) = stack.of_type("AWS::S3::Bucket")
    configs = stack.props(bucket)["NotificationConfiguration"]["QueueConfigurations"]
    routes = sorted(
        (
            c["Event"],
            tuple((r["Name"], r["Value"]) for r in c["Filter"]["S3Key"]["Rules"]),
            c["Queue"]["Fn::GetAtt"][0],
        )
        for c in configs
    )
    assert routes == sorted(
        [
            ("s3:ObjectCreated:*", (("suffix", SUFFIX[EXTRACTED]),), "TransformQueue"),
            ("s3:ObjectCreated:*", (("suffix", SUFFIX[TRANSFORMED]),), "LoadQueue"),
            ("s3:ObjectCreated:*", (("suffix", SUFFIX["transformed-ddb"]),), "LoadQueue"),
        ]
    )
    # No prefix filter: keys start with runs/<run id>/, which a prefix cannot skip.
    assert all(r[0] != "prefix" for _, rules, _ in routes for r in rules)
    # Each target queue lets exactly this bucket (the deployed one) send to it.
    for queue in ("TransformQueue", "LoadQueue"):
        (policy,) = [
            p
            for p in stack.of_type("AWS::SQS::QueuePolicy").values()
            if p["Properties"]["Queues"] == [{"Ref": queue}]
        ]
        (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
        assert statement["Action"] == "sqs:SendMessage"
        assert statement["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
        source = _sub(statement["Condition"]["ArnEquals"]["aws:SourceArn"], stack.name)
        assert source == f"arn:aws:s3:::{stack.outputs['StagingBucketName']}"
        assert f"{queue}Policy" in stack.cfn["Resources"][bucket]["DependsOn"]


def _sub(value, stack_name: str) -> str:
    """A translated Fn::Sub of pseudo parameters, as CloudFormation resolves it here."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    names = {
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::StackName": stack_name,
    }
    return re.sub(r"\$\{([^}]+)\}", lambda m: names[m[1]], text)


# ---------------------------------------------------------------- storage


def test_staging_bucket_is_encrypted_private_tls_only_and_expires_run_data(stack):
    s3 = stack.client("s3")
    bucket = stack.outputs["StagingBucketName"]
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # moto does not apply the rest: checked in the translated template.
    props = stack.props("StagingBucket")
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert (rule["Prefix"], rule["Status"]) == ("runs/", "Enabled")
    assert rule["ExpirationInDays"] == {"Ref": "RunDataRetentionDays"}
    assert stack.cfn["Parameters"]["RunDataRetentionDays"]["Default"] == 30
    assert "VersioningConfiguration" not in props  # StagingBucketVersioning defaults to Suspended
    (policy,) = stack.of_type("AWS::S3::BucketPolicy").values()
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "s3:*")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [
        {"Fn::GetAtt": ["StagingBucket", "Arn"]},
        {"Fn::Sub": "${StagingBucket.Arn}/*"},
    ]


def test_manifest_table_is_on_demand_with_point_in_time_recovery(stack):
    table = stack.client("dynamodb").describe_table(TableName=stack.outputs["ManifestTableName"])
    assert table["Table"]["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert [k["AttributeName"] for k in table["Table"]["KeySchema"]] == ["pk", "sk"]
    props = stack.props("ManifestTable")  # moto does not apply these two
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}


# ---------------------------------------------------------------- state machine


def test_state_machine_runs_the_definition_in_statemachine_with_logging_and_tracing(stack):
    sfn = stack.client("stepfunctions")
    desc = sfn.describe_state_machine(stateMachineArn=stack.outputs["StateMachineArn"])
    assert desc["status"] == "ACTIVE" and desc["type"] == "STANDARD"
    source = json.loads(ASL.read_text())
    deployed = json.loads(desc["definition"])
    assert deployed["StartAt"] == source["StartAt"]
    assert deployed["States"] == source["States"]
    # moto keeps the ${...} placeholders (it ignores DefinitionSubstitutions): every one is
    # substituted by the translated template, with the resource it must name.
    props = stack.props("MigrationStateMachine")
    placeholders = set(re.findall(r"\$\{(\w+)\}", desc["definition"]))
    assert placeholders == set(props["DefinitionSubstitutions"])
    assert props["DefinitionSubstitutions"] == {
        "PlanFunctionArn": {"Fn::GetAtt": ["PlanFunction", "Arn"]},
        "ProgressFunctionArn": {"Fn::GetAtt": ["ProgressFunction", "Arn"]},
        "VerifyFunctionArn": {"Fn::GetAtt": ["VerifyFunction", "Arn"]},
        "ImportFunctionArn": {"Fn::GetAtt": ["ImportFunction", "Arn"]},
        "ExtractQueueUrl": {"Ref": "ExtractQueue"},
        "BulkJobName": {"Ref": "BulkJob"},
    }
    logging = props["LoggingConfiguration"]
    assert logging["Level"] in ("ALL", "ERROR")
    assert logging["IncludeExecutionData"] is False
    assert logging["Destinations"] == [
        {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["StateMachineLogGroup", "Arn"]}}}
    ]
    assert props["TracingConfiguration"] == {"Enabled": True}


# ---------------------------------------------------------------- permissions


def _statements(st: Deployed, role_lid: str) -> list[dict]:
    iam = st.client("iam")
    role = st.physical[role_lid]
    out = []
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if isinstance(doc, str):  # moto keeps a template's policy as the text of a Python dict
            doc = ast.literal_eval(doc)
        for s in doc["Statement"]:
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            out.append({"actions": set(actions), "resources": resources})
    return out


LOG_DELIVERY = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
# What Glue needs to place the bulk job's workers in a VPC (SubnetIds given).
GLUE_VPC_DESCRIBE = {
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeVpcAttribute",
}


@pytest.mark.parametrize("which", ["stack", "vpc_stack"])
def test_every_inline_permission_names_a_resource_of_this_stack(which, request):
    st = request.getfixturevalue(which)
    bucket = st.outputs["StagingBucketName"]
    for role in st.of_type("AWS::IAM::Role"):
        for s in _statements(st, role):
            if "*" in s["resources"]:
                # Only log delivery and the bulk job's VPC placement, whose actions take no
                # narrower resource.
                allowed = GLUE_VPC_DESCRIBE if role == "BulkJobRole" else LOG_DELIVERY
                assert s["actions"] <= allowed, (role, s)
                continue
            for action in s["actions"]:
                assert not action.endswith("*"), (role, action)
            if any(a.startswith("s3:") for a in s["actions"]):
                assert all(bucket in str(r) for r in s["resources"]), (role, s)
    managed = {
        arn
        for role in st.of_type("AWS::IAM::Role").values()
        for arn in role["Properties"].get("ManagedPolicyArns", [])
    }
    # SAM's own additions, none of them asked for by the template: logs, X-Ray, polling of
    # SQS event sources, and ENI management for VPC functions (SAM adds the last whenever
    # VpcConfig is declared, here behind a condition).
    assert {a.rsplit("/", 1)[-1] for a in managed} <= {
        "AWSLambdaBasicExecutionRole",
        "AWSXrayWriteOnlyAccess",
        "AWSLambdaSQSQueueExecutionRole",
        "AWSLambdaVPCAccessExecutionRole",
    }


def test_target_permissions_follow_the_target_kind(stack, vpc_stack):
    def actions(st, role):
        return set().union(*(s["actions"] for s in _statements(st, role)))

    def secrets(st, role):
        return {
            str(r)
            for s in _statements(st, role)
            if "secretsmanager:GetSecretValue" in s["actions"]
            for r in s["resources"]
        }

    # DynamoDB target: the load function writes items; no MySQL secret anywhere.
    assert {"dynamodb:BatchWriteItem"} <= actions(stack, "LoadFunctionRole")
    assert secrets(stack, "LoadFunctionRole") == set()
    assert secrets(stack, "ExtractFunctionRole") == {SOURCE_SECRET}
    assert "dynamodb:CreateTable" not in actions(stack, "PlanFunctionRole")
    # MySQL target: no DynamoDB target permission, the target secret for load and verify.
    assert "dynamodb:BatchWriteItem" not in actions(vpc_stack, "LoadFunctionRole")
    assert "dynamodb:Scan" not in actions(vpc_stack, "VerifyFunctionRole")
    assert secrets(vpc_stack, "LoadFunctionRole") == {TARGET_SECRET}
    assert secrets(vpc_stack, "VerifyFunctionRole") == {SOURCE_SECRET, TARGET_SECRET}
    # The extract function never sees the target, the load function never the source.
    assert secrets(vpc_stack, "ExtractFunctionRole") == {SOURCE_SECRET}


def test_the_import_function_may_import_into_target_tables_and_nothing_more(stack, vpc_stack):
    """ImportTable reads the staged objects and writes its logs with the caller's rights."""
    statements = _statements(stack, "ImportFunctionRole")
    by_action = {a: s["resources"] for s in statements for a in s["actions"]}
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/*"
    for action in ("dynamodb:ImportTable", "dynamodb:DescribeImport", "dynamodb:DescribeTable"):
        assert [_sub(r, stack.name) for r in by_action[action]] == [table, f"{table}/import/*"]
    logs = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws-dynamodb/*"
    for action in (
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogGroups",
        "logs:DescribeLogStreams",
    ):
        assert [_sub(r, stack.name) for r in by_action[action]] == [logs], action
    bucket = stack.outputs["StagingBucketName"]
    assert {"s3:GetObject", "s3:ListBucket"} <= set(by_action)
    assert all(bucket in str(r) for a, rs in by_action.items() if a.startswith("s3:") for r in rs)
    assert not {a for a in by_action if a.startswith("secretsmanager:")}
    # Nothing that writes items, and no target permission at all on a MySQL-target stack.
    assert not {"dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:CreateTable"} & set(
        by_action
    )
    vpc_actions = {a for s in _statements(vpc_stack, "ImportFunctionRole") for a in s["actions"]}
    assert not {a for a in vpc_actions if a.startswith("logs:") or "Import" in a}


# ---------------------------------------------------------------- run notifications


def test_run_end_notification_matches_this_state_machines_runs_only(stack):
    """The rule's pattern against Step Functions' event shape, and what the topic receives.

    moto's EventBridge does not deliver to SNS targets, so a stand-in SQS target shows which
    events match. Its input transformer inserts string values unquoted, unlike EventBridge (a
    JSON template's string variable arrives as a JSON string: the "Simple JSON" example of
    the EventBridge input transformation guide), so the template is rendered here by that rule.
    """
    events, sqs = stack.client("events"), stack.client("sqs")
    rule = stack.physical["RunEndedRule"]
    (target,) = events.list_targets_by_rule(Rule=rule)["Targets"]
    assert target["Arn"] == stack.outputs["RunNotificationTopicArn"]
    probe = sqs.create_queue(QueueName="rehearsal-run-ended")["QueueUrl"]
    probe_arn = sqs.get_queue_attributes(QueueUrl=probe, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    # The topic target comes off first: moto would apply its transformer, and fail on it.
    events.remove_targets(Rule=rule, Ids=[target["Id"]])
    events.put_targets(Rule=rule, Targets=[{"Id": "probe", "Arn": probe_arn}])
    machine = stack.outputs["StateMachineArn"]
    output = {"run_id": "r1", "verify": {"ok": True, "tables": {"users": {"loaded": 40}}}}

    def status_change(name: str, status: str, machine_arn: str) -> dict:
        execution = machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        return {
            "Source": "aws.states",
            "DetailType": "Step Functions Execution Status Change",
            "Detail": json.dumps(
                {
                    "executionArn": execution,
                    "stateMachineArn": machine_arn,
                    "name": name,
                    "status": status,
                    "startDate": 1767225600000,
                    "stopDate": None if status == "RUNNING" else 1767225660000,
                    "input": "{}",
                    "output": json.dumps(output) if status == "SUCCEEDED" else None,
                    "error": "RunNotVerified" if status == "FAILED" else None,
                    "cause": json.dumps({"ok": False}) if status == "FAILED" else None,
                }
            ),
        }

    events.put_events(
        Entries=[
            status_change("r1", "SUCCEEDED", machine),
            status_change("r2", "FAILED", machine),
            status_change("r3", "RUNNING", machine),  # not an end
            status_change("child", "SUCCEEDED", machine + "/SendPages"),  # a map run's child
            status_change("other", "FAILED", machine.replace("sluice-migration", "other")),
        ]
    )
    matched = [
        json.loads(m["Body"])
        for m in sqs.receive_message(QueueUrl=probe, MaxNumberOfMessages=10).get("Messages", [])
    ]
    assert sorted((e["detail"]["name"], e["detail"]["status"]) for e in matched) == [
        ("r1", "SUCCEEDED"),
        ("r2", "FAILED"),
    ]
    transformer = target["InputTransformer"]
    sent = {e["detail"]["name"]: _transform(transformer, e) for e in matched}
    assert sent["r1"]["run_id"] == "r1" and sent["r1"]["status"] == "SUCCEEDED"
    assert json.loads(sent["r1"]["output"])["verify"]["tables"]["users"]["loaded"] == 40
    assert sent["r1"]["execution"].endswith(":execution:sluice-migration:r1")
    assert (sent["r2"]["status"], sent["r2"]["error"]) == ("FAILED", "RunNotVerified")
    assert json.loads(sent["r2"]["cause"]) == {"ok": False}


def _transform(transformer: dict, event: dict) -> dict:
    """An input transformer's JSON template applied as EventBridge documents it."""
    values = {}
    for var, path in transformer["InputPathsMap"].items():
        node = event
        for part in path.removeprefix("$.").split("."):
            node = node.get(part) if isinstance(node, dict) else None
        values[var] = node
    template = transformer["InputTemplate"]
    assert set(re.findall(r"<(\w+)>", template)) == set(values)
    return json.loads(re.sub(r"<(\w+)>", lambda m: json.dumps(values[m[1]]), template))


def test_topic_accepts_the_rule_and_alarms_and_mails_when_asked(stack, vpc_stack):
    (policy,) = stack.of_type("AWS::SNS::TopicPolicy").values()
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    events = statements["RunEndedEvents"]
    assert events["Principal"] == {"Service": "events.amazonaws.com"}
    assert events["Action"] == "sns:Publish"
    assert events["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["RunEndedRule", "Arn"]}}
    }
    assert statements["Alarms"]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    # moto does not create AWS::SNS::Subscription: checked in the translated template.
    (mail,) = vpc_stack.of_type("AWS::SNS::Subscription").values()
    assert mail["Properties"] == {
        "TopicArn": {"Ref": "RunNotificationTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "NotificationEmail"},
    }
    assert vpc_stack.params["NotificationEmail"] == "dba@example.com"
    assert not stack.of_type("AWS::SNS::Subscription")  # no NotificationEmail, no subscription


# ---------------------------------------------------------------- alarms and dashboard


def test_alarms_watch_every_dead_letter_queue_and_every_function(stack):
    # moto does not create alarms: checked in the translated template.
    alarms = [a["Properties"] for a in stack.of_type("AWS::CloudWatch::Alarm").values()]
    dlq = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in alarms
        if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
    }
    errors = {a["Dimensions"][0]["Value"]["Ref"] for a in alarms if a["MetricName"] == "Errors"}
    assert dlq == {"ExtractDLQ", "TransformDLQ", "LoadDLQ"}
    assert errors == set(FUNCTIONS)
    for a in alarms:
        assert (a["ComparisonOperator"], a["Threshold"]) == ("GreaterThanThreshold", 0)
        assert a["TreatMissingData"] == "notBreaching"
        assert a["AlarmActions"] == [{"Ref": "RunNotificationTopic"}]


def test_dashboard_shows_rows_per_stage_rejects_dlq_depths_and_page_seconds(stack):
    cw = stack.client("cloudwatch")
    body = json.loads(
        cw.get_dashboard(DashboardName=stack.outputs["DashboardName"])["DashboardBody"]
    )
    metrics = [m for w in body["widgets"] for m in w["properties"]["metrics"]]
    sluice = {(m[1], m[2], m[3]) for m in metrics if m[0] == "Sluice"}
    for name in ("RowsExtracted", "RowsTransformed", "RowsLoaded", "RowsRejected", "PageSeconds"):
        assert (name, "service", "sluice") in sluice, name
    queues = {
        m[3]
        for m in metrics
        if m[:3] == ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"]
    }
    for dlq in ("ExtractDLQ", "TransformDLQ", "LoadDLQ"):
        assert stack.physical[dlq].rsplit("/", 1)[-1] in queues, dlq
    per_minute = [w for w in body["widgets"] if "per minute" in w["properties"]["title"]]
    assert per_minute and all(w["properties"]["period"] == 60 for w in per_minute)
