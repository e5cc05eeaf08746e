"""Operating a deployed stack: start a run (`sluice start`) and show where it stands (`sluice status`).

Every function takes the AWS clients it uses, so tests pass moto's and users pass their own.
The stack is found through its CloudFormation outputs (template.yaml's Outputs section).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import contract as contract_mod
from .errors import ContractError, SluiceError
from .manifest import Manifest, TableProgress
from .redrive import STAGES

BAR_WIDTH = 24


@dataclass(frozen=True, slots=True)
class Stack:
    """What `start` and `status` need from a deployed stack, read from its outputs."""

    name: str
    state_machine_arn: str
    bucket: str
    manifest_table: str
    dlq_urls: dict[str, str] = field(default_factory=dict)
    queue_urls: dict[str, str] = field(default_factory=dict)
    target_kind: str | None = None
    page_size: int | None = None
    bulk_threshold_rows: int | None = None
    verify_function: str | None = None  # `sluice verify --run ID` invokes it

    @classmethod
    def from_outputs(cls, name: str, outputs: dict[str, str]) -> Stack:
        need = ("StateMachineArn", "StagingBucketName", "ManifestTableName")
        missing = [k for k in need if not outputs.get(k)]
        if missing:
            raise SluiceError(
                f"stack {name} has no output {', '.join(missing)}: is it a Sluice stack "
                "(deployed from template.yaml)?"
            )
        return cls(
            name=name,
            state_machine_arn=outputs["StateMachineArn"],
            bucket=outputs["StagingBucketName"],
            manifest_table=outputs["ManifestTableName"],
            dlq_urls={
                s: outputs[f"{s.capitalize()}DLQUrl"]
                for s in STAGES
                if outputs.get(f"{s.capitalize()}DLQUrl")
            },
            queue_urls={
                s: outputs[f"{s.capitalize()}QueueUrl"]
                for s in STAGES
                if outputs.get(f"{s.capitalize()}QueueUrl")
            },
            target_kind=outputs.get("TargetKind") or None,
            page_size=_int_or_none(outputs.get("PageSize")),
            bulk_threshold_rows=_int_or_none(outputs.get("BulkThresholdRows")),
            verify_function=outputs.get("VerifyFunctionName") or None,
        )

    def execution_arn(self, run_id: str) -> str:
        """A run's execution: `sluice start` names each execution after its run id."""
        head, _, machine = self.state_machine_arn.rpartition(":stateMachine:")
        return f"{head}:execution:{machine}:{run_id}"


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text not in (None, "") else None


def find_stack(cloudformation, name: str) -> Stack:
    """The stack named `name`, from `cloudformation.describe_stacks`."""
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except cloudformation.exceptions.ClientError as exc:
        raise SluiceError(
            f"stack {name} not found ({exc.response['Error'].get('Message', exc)}): deploy it "
            "with `sam deploy --guided`, or check --stack and the AWS region"
        ) from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return Stack.from_outputs(name, outputs)


# ---------------------------------------------------------------- start


@dataclass(frozen=True, slots=True)
class Started:
    run_id: str
    execution_arn: str
    contract_key: str


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def contract_for_stack(doc: dict[str, Any], stack: Stack) -> dict[str, Any]:
    """The contract as the stack runs it: checked, with the stack's defaults where it sets none.

    Refused (ContractError, every problem with its JSON path) when invalid, and refused when
    its target kind is not the one the stack's permissions were deployed for.
    """
    found = contract_mod.problems(doc)
    if found:
        raise ContractError(found)
    kind = doc["target"]["kind"]
    if stack.target_kind and kind != stack.target_kind:
        raise SluiceError(
            f"the contract's target is {kind}, but stack {stack.name} was deployed with "
            f"TargetKind={stack.target_kind}: redeploy with "
            f"`sam deploy --parameter-overrides TargetKind={kind} ...` or use another stack"
        )
    doc = json.loads(json.dumps(doc))
    defaults = doc.setdefault("defaults", {})
    if stack.page_size is not None:
        defaults.setdefault("page_size", stack.page_size)
    if stack.bulk_threshold_rows is not None:
        defaults.setdefault("bulk_threshold_rows", stack.bulk_threshold_rows)
    if not defaults:
        doc.pop("defaults")
    return doc


def start_run(
    stack: Stack, doc: dict[str, Any], *, s3, stepfunctions, run_id: str | None = None
) -> Started:
    """Upload the contract to the staging bucket and start one execution named after the run."""
    doc = contract_for_stack(doc, stack)
    run_id = run_id or new_run_id()
    key = f"runs/{run_id}/start/contract.json"
    s3.put_object(
        Bucket=stack.bucket,
        Key=key,
        Body=json.dumps(doc, indent=2).encode(),
        ContentType="application/json",
    )
    try:
        arn = stepfunctions.start_execution(
            stateMachineArn=stack.state_machine_arn,
            name=run_id,
            input=json.dumps({"contract_key": key, "run_id": run_id}),
        )["executionArn"]
    except stepfunctions.exceptions.ExecutionAlreadyExists as exc:
        raise SluiceError(
            f"run {run_id} already exists on stack {stack.name}: pick another run id"
        ) from exc
    return Started(run_id, arn, key)


# ---------------------------------------------------------------- status


@dataclass(frozen=True, slots=True)
class RunStatus:
    run_id: str
    run: dict[str, Any] | None  # the manifest's RUN item (status, verdict, started_at)
    tables: dict[str, TableProgress]
    dlq_depths: dict[str, int]
    execution: dict[str, Any] | None  # status, startDate, stopDate, error (None: not found)

    @property
    def pages(self) -> int:
        return sum(t.pages for t in self.tables.values())

    @property
    def pages_loaded(self) -> int:
        return sum(t.pages_loaded for t in self.tables.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": (self.execution or {}).get("status") or (self.run or {}).get("status"),
            "verdict": (self.run or {}).get("verdict"),
            "pages": self.pages,
            "pages_loaded": self.pages_loaded,
            "tables": {n: t.to_dict() for n, t in sorted(self.tables.items())},
            "dlq_depths": self.dlq_depths,
            "execution": self.execution,
        }


def dlq_depths(sqs, dlq_urls: dict[str, str]) -> dict[str, int]:
    """Messages in each stage's dead-letter queue, visible or in flight (all runs' together)."""
    out = {}
    for stage, url in dlq_urls.items():
        attrs = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        out[stage] = int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )
    return out


def run_status(stack: Stack, run_id: str, *, dynamodb, sqs, stepfunctions=None) -> RunStatus:
    """Where run `run_id` stands: its manifest per table, DLQ depths, and its execution.

    `dynamodb` is a boto3 DynamoDB *resource* (the manifest reads through a Table).
    """
    manifest = Manifest(dynamodb.Table(stack.manifest_table))
    run = manifest.run(run_id)
    tables = manifest.progress(run_id)
    execution = None
    if stepfunctions is not None:
        # The latest execution of the run: the first, or its last `sluice resume`.
        resumes = int((run or {}).get("resumes", 0))
        name = f"{run_id}-resume-{resumes}" if resumes else run_id
        try:
            desc = stepfunctions.describe_execution(executionArn=stack.execution_arn(name))
            execution = {
                k: desc[k] for k in ("status", "startDate", "stopDate", "error") if desc.get(k)
            }
        except stepfunctions.exceptions.ExecutionDoesNotExist:
            execution = None
    if run is None and execution is None:
        raise SluiceError(
            f"no run {run_id} on stack {stack.name}: neither the manifest nor Step Functions "
            "knows it (`sluice start` prints the run id)"
        )
    return RunStatus(run_id, run, tables, dlq_depths(sqs, stack.dlq_urls), execution)


def render_status(st: RunStatus) -> str:
    """Per-table progress bars, failed pages, and DLQ depths, as lines for a terminal."""
    status = st.to_dict()["status"] or "unknown"
    lines = [f"Run {st.run_id}: {status}, {st.pages_loaded}/{st.pages} pages loaded", ""]
    for name in sorted(st.tables):
        t = st.tables[name]
        frac = t.pages_loaded / t.pages if t.pages else 1.0
        filled = int(frac * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        imported = (
            f"  (Import from S3: {t.import_status or 'not started'})" if t.load == "import" else ""
        )
        rate = (
            f"  {t.write_units:,} write units ({t.write_units_per_second:,}/s, "
            f"{t.rate_wait_ms / 1000:,.1f} s waiting on write_rate)"
            if t.write_units_per_second
            else ""
        )
        lines.append(
            f"  {name:<24.24} [{bar}] {t.pages_loaded:>5}/{t.pages:<5} pages  "
            f"{t.loaded:>10,} rows loaded  {t.rejected:>7,} rejected{imported}{rate}"
        )
        for p in t.failed_pages:
            state = "FAILED" if p["status"] == "failed" else f"retrying ({p['status']})"
            lines.append(
                f"      page {p['page']}: {state} at {p['stage']} after {p['attempts']} "
                f"attempts: {p['error']}"
            )
    if not st.tables:
        lines.append("  (no tables planned yet)")
    lines.append("")
    depths = ", ".join(f"{stage} {n}" for stage, n in st.dlq_depths.items())
    lines.append(f"  dead-letter queues: {depths or 'none configured'}")
    if any(st.dlq_depths.values()):
        lines.append(
            "  (dead-letter queues are shared by every run of the stack; the failed pages above "
            "are this run's)"
        )
    verdict = (st.run or {}).get("verdict")
    if verdict:
        lines += ["", f"  {verdict}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- redrive and resume


def stage_queues(sqs, stack: Stack, stages=STAGES) -> list:
    """Each stage's queue and dead-letter queue, with their ARNs (for the move task)."""
    from .redrive import StageQueues

    def arn(url: str) -> str:
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    out = []
    for stage in stages:
        if stage not in stack.queue_urls or stage not in stack.dlq_urls:
            raise SluiceError(
                f"stack {stack.name} has no {stage.capitalize()}QueueUrl/"
                f"{stage.capitalize()}DLQUrl output: redeploy it from this template.yaml"
            )
        q, d = stack.queue_urls[stage], stack.dlq_urls[stage]
        out.append(StageQueues(stage, q, arn(q), d, arn(d)))
    return out


def redrive_stack(stack: Stack, run_id: str | None, stages=STAGES, *, sqs, dynamodb, say=None):
    """`sluice redrive --stack`: dead-letter messages back to their stage queues (all of them
    by an SQS message move task, or one run's by a receive/send/delete loop)."""
    from .redrive import redrive

    manifest = Manifest(dynamodb.Table(stack.manifest_table))
    if run_id is not None and manifest.run(run_id) is None:
        raise SluiceError(f"no run {run_id} on stack {stack.name} (the manifest does not know it)")
    return redrive(
        sqs,
        manifest,
        stage_queues(sqs, stack, stages),
        run_id=run_id,
        move_task=True,
        on_progress=say,
    )


def resume_execution(stack: Stack, run_id: str, *, dynamodb, stepfunctions) -> str:
    """`sluice resume --stack`: a new execution of the run (named `<run>-resume-N`) that
    waits for its pages, redriven ones included, then imports and verifies."""
    manifest = Manifest(dynamodb.Table(stack.manifest_table))
    run = manifest.run(run_id)
    if run is None:
        raise SluiceError(f"no run {run_id} on stack {stack.name} (the manifest does not know it)")
    n = int(run.get("resumes", 0)) + 1
    while True:
        try:
            return stepfunctions.start_execution(
                stateMachineArn=stack.state_machine_arn,
                name=f"{run_id}-resume-{n}",
                input=json.dumps({"resume": True, "run_id": run_id}),
            )["executionArn"]
        except stepfunctions.exceptions.ExecutionAlreadyExists:
            n += 1  # an earlier resume that did not get as far as counting itself


def wait_execution(stepfunctions, arn: str, *, poll: float = 10, on_tick=None) -> dict:
    """describe_execution once the execution has ended."""
    while True:
        desc = stepfunctions.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING":
            return desc
        if on_tick:
            on_tick()
        time.sleep(poll)


# ---------------------------------------------------------------- deep verification

# The verify function may run its 900 s; the call waits that long, and is never sent twice.
VERIFY_READ_TIMEOUT = 910


def deep_verify(stack: Stack, run_id: str, *, lambda_client, tables=None) -> dict:
    """`sluice verify --run ID --stack NAME`: the stack's verify function, invoked and waited
    for, reads every page of the run back from the target (stages.verify_run, deep)."""
    if not stack.verify_function:
        raise SluiceError(
            f"stack {stack.name} has no VerifyFunctionName output: redeploy it from this "
            "template.yaml"
        )
    event = {"run_id": run_id, "deep": True}
    if tables:
        event["tables"] = list(tables)
    resp = lambda_client.invoke(
        FunctionName=stack.verify_function,
        InvocationType="RequestResponse",
        Payload=json.dumps(event).encode(),
    )
    body = json.loads(resp["Payload"].read() or b"null")
    if resp.get("FunctionError"):
        err = body if isinstance(body, dict) else {}
        raise SluiceError(
            f"the verify function of stack {stack.name} failed on run {run_id}: "
            f"{err.get('errorType', 'Error')}: {err.get('errorMessage', body)}"
        )
    return body


def lambda_client(region: str | None = None):
    """A Lambda client for one long synchronous call: no retry (a verification is not
    repeated behind the user's back), and a read timeout past the function's own."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=region)
    if session.region_name is None:
        raise SluiceError("no AWS region: pass --region, or set AWS_REGION or a profile's region")
    return session.client(
        "lambda",
        config=Config(
            read_timeout=VERIFY_READ_TIMEOUT,
            connect_timeout=10,
            retries={"total_max_attempts": 1},
        ),
    )


# ---------------------------------------------------------------- clients


def clients(region: str | None = None) -> dict[str, Any]:
    """The clients `start` and `status` use, from the user's AWS configuration.

    A plain boto3 session, so the profile's region applies when neither --region nor
    AWS_REGION is given (sluice.aws.region() would default to us-east-1 instead).
    """
    import boto3

    from .aws import _CONFIG

    session = boto3.session.Session(region_name=region)
    if session.region_name is None:
        raise SluiceError("no AWS region: pass --region, or set AWS_REGION or a profile's region")
    return {
        "cloudformation": session.client("cloudformation", config=_CONFIG),
        "s3": session.client("s3", config=_CONFIG),
        "stepfunctions": session.client("stepfunctions", config=_CONFIG),
        "sqs": session.client("sqs", config=_CONFIG),
        "dynamodb": session.resource("dynamodb", config=_CONFIG),
    }
