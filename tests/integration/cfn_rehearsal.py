"""Deploy rehearsal: template.yaml translated from SAM to CloudFormation, created in moto.

The translation is samtranslator's, the library `sam deploy` relies on (through the
CloudFormation transform) and `sam validate` calls; AWS managed policy names resolve from
the map bundled with samtranslator, so nothing here needs an AWS account or the network.
"""

from __future__ import annotations

import copy
import io
import json
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samcli.yamlhelper import yaml_parse
from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

ROOT = Path(__file__).resolve().parents[2]
SOURCE_TEMPLATE = ROOT / "template.yaml"
BUILT_TEMPLATE = ROOT / ".aws-sam" / "build" / "template.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"
ARTIFACTS = "sluice-rehearsal-artifacts"

# What moto's CloudFormation (5.2.5) does not create or apply, so these are checked in the
# translated template instead (FIELD-NOTES.md, "moto").
NOT_CREATED_BY_MOTO = (
    "AWS::SQS::QueuePolicy",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::SNS::Subscription",
    "AWS::CloudWatch::Alarm",
    "AWS::Glue::Job",
    "AWS::Glue::Connection",
)
NOT_APPLIED_BY_MOTO = (
    "AWS::S3::Bucket NotificationConfiguration",
    "AWS::S3::Bucket PublicAccessBlockConfiguration, LifecycleConfiguration, OwnershipControls",
    "AWS::DynamoDB::Table PointInTimeRecoverySpecification, SSESpecification",
    "AWS::Lambda::Function TracingConfig, LoggingConfig, Layers",
    "AWS::StepFunctions::StateMachine DefinitionSubstitutions, LoggingConfiguration, TracingConfiguration",
    "AWS::IAM::Role ManagedPolicyArns",
    "AWS::Events::Rule target delivery to SNS, and input transformers as EventBridge applies them",
)


class OfflineManagedPolicies(ManagedPolicyLoader):
    """AWS managed policy ARNs from the map bundled with samtranslator, never from IAM."""

    def __init__(self) -> None:
        super().__init__(iam_client=None)

    def load(self) -> dict[str, str]:
        return dict(get_bundled_managed_policy_map("aws") or {})


def _strip_build_paths(doc: dict) -> dict:
    """The template without what `sam build` rewrites (code paths, definition path, metadata).

    As plain dicts: the YAML loader's ordered mappings would compare key order too, and
    `sam build` writes some mappings' keys in another order.
    """
    doc = json.loads(json.dumps(doc))
    for res in doc["Resources"].values():
        props = res.get("Properties", {})
        for k in ("CodeUri", "ContentUri", "DefinitionUri"):
            props.pop(k, None)
        meta = res.get("Metadata", {})
        for k in ("SamResourceId", "BuildMethod"):
            meta.pop(k, None)
        if not meta:
            res.pop("Metadata", None)
    return doc


@dataclass(frozen=True)
class TemplateUnderTest:
    path: Path
    doc: dict
    built: bool
    note: str


def template_under_test() -> TemplateUnderTest:
    """`sam build`'s output when it is current (as in CI, where `make build` runs first), else
    template.yaml itself: the two translate to the same resources."""
    source = yaml_parse(SOURCE_TEMPLATE.read_text())
    if BUILT_TEMPLATE.exists():
        built = yaml_parse(BUILT_TEMPLATE.read_text())
        if _strip_build_paths(built) == _strip_build_paths(source):
            return TemplateUnderTest(BUILT_TEMPLATE, built, True, "the built template")
        note = "template.yaml (the built one is older: run `make build`)"
    else:
        note = "template.yaml (no `sam build` output: run `make build`)"
    return TemplateUnderTest(SOURCE_TEMPLATE, source, False, note)


def translate(t: TemplateUnderTest, parameters: dict[str, str]) -> dict:
    """SAM -> CloudFormation, as the transform does at deploy time.

    Local code paths become S3 locations (as `sam package` makes them) and the state machine
    definition is inlined, so the result deploys without an artifact upload step.
    """
    doc = copy.deepcopy(t.doc)
    base = t.path.parent
    for lid, res in doc["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = f"s3://{ARTIFACTS}/{lid}.zip"
        elif res["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = f"s3://{ARTIFACTS}/{lid}.zip"
        elif res["Type"] == "AWS::Serverless::StateMachine":
            props["Definition"] = json.loads((base / props.pop("DefinitionUri")).read_text())
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    return transform(doc, dict(parameters), OfflineManagedPolicies())


# ---------------------------------------------------------------- conditions

_NO_VALUE = object()


def fold_conditions(cfn: dict, parameters: dict[str, str]) -> dict:
    """Evaluate Conditions, Fn::If and AWS::NoValue as CloudFormation does before creating.

    moto leaves AWS::NoValue in lists as None (an IAM role's Policies then fails to create),
    so the rehearsal hands it the template CloudFormation would act on for these parameters.
    """
    declared = cfn.get("Conditions", {})
    values = {k: str(v.get("Default", "")) for k, v in cfn.get("Parameters", {}).items()}
    values.update(parameters)
    lists = {k for k, v in cfn.get("Parameters", {}).items() if v["Type"] == "CommaDelimitedList"}

    def value(x: Any) -> Any:
        if isinstance(x, dict) and "Ref" in x:
            v = values[x["Ref"]]
            return v.split(",") if x["Ref"] in lists else v
        if isinstance(x, dict) and "Fn::Join" in x:
            sep, items = x["Fn::Join"]
            items = value(items) if isinstance(items, dict) else [value(i) for i in items]
            return sep.join(items)
        return x

    def holds(e: dict) -> bool:
        if "Condition" in e:
            return holds(declared[e["Condition"]])
        if "Fn::Not" in e:
            return not holds(e["Fn::Not"][0])
        if "Fn::And" in e:
            return all(holds(x) for x in e["Fn::And"])
        if "Fn::Or" in e:
            return any(holds(x) for x in e["Fn::Or"])
        if "Fn::Equals" in e:
            a, b = e["Fn::Equals"]
            return value(a) == value(b)
        raise ValueError(f"condition not understood: {e}")

    truth = {k: holds(v) for k, v in declared.items()}

    def fold(x: Any) -> Any:
        if isinstance(x, list):
            return [y for y in map(fold, x) if y is not _NO_VALUE]
        if isinstance(x, dict):
            if x == {"Ref": "AWS::NoValue"}:
                return _NO_VALUE
            if "Fn::If" in x:
                name, yes, no = x["Fn::If"]
                return fold(yes if truth[name] else no)
            return {k: y for k, y in ((k, fold(v)) for k, v in x.items()) if y is not _NO_VALUE}
        return x

    out = {k: v for k, v in cfn.items() if k != "Conditions"}
    out["Resources"] = {}
    for lid, res in cfn["Resources"].items():
        if truth.get(res.get("Condition"), True):
            res = fold(res)
            res.pop("Condition", None)
            out["Resources"][lid] = res
    out["Outputs"] = {
        k: fold(o) for k, o in cfn.get("Outputs", {}).items() if truth.get(o.get("Condition"), True)
    }
    return out


# ---------------------------------------------------------------- deploy


@contextmanager
def rehearsal_environment() -> Iterator[None]:
    """Credentials and region for moto and the translator, put back as they were afterwards.

    A module-scoped mock outlives the per-test environment restore of conftest.py; with the
    variables set before it starts, moto's own clean-up puts values back instead of failing.
    """
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(
        AWS_ACCESS_KEY_ID="rehearsal", AWS_SECRET_ACCESS_KEY="rehearsal", AWS_DEFAULT_REGION=REGION
    )
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _placeholder_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "def lambda_handler(event, context):\n    return {}\n")
    return buf.getvalue()


def deploy(session, stack_name: str, cfn: dict, parameters: dict[str, str]) -> dict:
    """Create the stack in moto (inside an active mock_aws) and return describe_stacks' entry.

    The code artifacts the translated template names are placeholders: the rehearsal checks
    wiring, not handler code (the local runtime runs the real handlers).
    """
    s3 = session.client("s3")
    if ARTIFACTS not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=ARTIFACTS)
    for res in cfn["Resources"].values():
        props = res.get("Properties", {})
        code = props.get("Code") or props.get("Content") or {}
        if code.get("S3Bucket") == ARTIFACTS:
            s3.put_object(Bucket=ARTIFACTS, Key=code["S3Key"], Body=_placeholder_zip())
    cf = session.client("cloudformation")
    cf.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(cfn),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    return cf.describe_stacks(StackName=stack_name)["Stacks"][0]


def rehearse(session, stack_name: str, parameters: dict[str, str]) -> tuple[dict, dict]:
    """Translate, fold and deploy: (the CloudFormation template deployed, the stack)."""
    cfn = fold_conditions(translate(template_under_test(), parameters), parameters)
    return cfn, deploy(session, stack_name, cfn, parameters)
