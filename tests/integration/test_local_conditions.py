"""The local runtime evaluates template.yaml's conditions as CloudFormation does."""

from __future__ import annotations

import pytest
from sluice.local.runtime import LocalStack

from .cfn_rehearsal import REGION, fold_conditions, template_under_test, translate

# Local runs create missing DynamoDB tables (LOCAL_OVERRIDES), so CreatesTables holds there.
LOCAL_DEFAULTS = {
    "HasSourceSecret": False,
    "HasTargetSecret": False,
    "IsDynamoDBTarget": True,
    "CreatesTables": True,
    "InVpc": False,
    "HasNotificationEmail": False,
    "VersionsStaging": False,
    "HasSourceJdbcUrl": False,
}
SHAPES = {
    "local defaults": ({}, LOCAL_DEFAULTS),
    "mysql target in a VPC": (
        {
            "TargetKind": "mysql",
            "SubnetIds": "subnet-1,subnet-2",
            "SecurityGroupIds": "sg-1",
            "NotificationEmail": "dba@example.com",
        },
        {
            **LOCAL_DEFAULTS,
            "IsDynamoDBTarget": False,
            "CreatesTables": False,
            "InVpc": True,
            "HasNotificationEmail": True,
        },
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_local_runtime_evaluates_every_condition_of_the_template(shape, monkeypatch):
    params, expected = SHAPES[shape]
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with LocalStack(parameters=params) as st:
        assert st.resolve.conditions == expected


def test_local_runtime_and_the_deploy_rehearsal_agree_on_conditions(monkeypatch):
    """Both evaluators (the local runtime's and the rehearsal's) keep the same resources."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    params = {"TargetKind": "mysql", "SubnetIds": "subnet-1", "SecurityGroupIds": "sg-1"}
    cfn = translate(template_under_test(), params)
    kept = set(fold_conditions(cfn, params)["Resources"])
    with LocalStack(parameters=params) as st:
        conditions = st.resolve.conditions
    declared = {lid: r.get("Condition") for lid, r in cfn["Resources"].items()}
    assert kept == {lid for lid, c in declared.items() if c is None or conditions[c]}
