"""`sluice redrive` and `sluice resume` against a stack deployed in moto (the rehearsal's)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from sluice import cli, operate, redrive
from sluice.errors import SluiceError
from sluice.manifest import Manifest
from sluice.staging import PageRef

from .cfn_rehearsal import REGION
from .test_operate import STACK, session, stack  # noqa: F401 (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::")


def _plan(manifest: Manifest, run_id: str, pages: int) -> list[PageRef]:
    refs = [PageRef(run_id, "users", p) for p in range(1, pages + 1)]
    manifest.record_plan(
        run_id,
        {"target_kind": "dynamodb"},
        [{"table": "users", "target_table": "shop", "pages": pages, "path": "lambda"}],
        [(r, {"page": r.page, "lo": None, "hi": None}) for r in refs],
    )
    return refs


def _s3_event(key: str) -> str:
    return json.dumps(
        {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"key": key}}}]}
    )


def _bodies(sqs, url: str) -> list[str]:
    out = []
    while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        out += [m["Body"] for m in msgs]
    return out


def test_redrive_of_one_run_moves_its_messages_back_and_leaves_other_runs(session, stack):  # noqa: F811
    sqs = session.client("sqs")
    manifest = Manifest(session.resource("dynamodb").Table(stack.manifest_table))
    a = _plan(manifest, "run-a", 3)
    b = _plan(manifest, "run-b", 1)
    manifest.record_failure(a[0], "extract", "OperationalError: gone", final=True)
    manifest.record_failure(a[2], "load", "Boom", final=True)
    manifest.record_failure(b[0], "load", "Boom", final=True)
    extract_msg = json.dumps({**a[0].to_dict(), "lo": None, "hi": None})
    load_a = _s3_event(a[2].key("transformed", "dynamodb"))
    load_b = _s3_event(b[0].key("transformed", "dynamodb"))
    sqs.send_message(QueueUrl=stack.dlq_urls["extract"], MessageBody=extract_msg)
    sqs.send_message(QueueUrl=stack.dlq_urls["load"], MessageBody=load_a)
    sqs.send_message(QueueUrl=stack.dlq_urls["load"], MessageBody=load_b)

    results = operate.redrive_stack(stack, "run-a", sqs=sqs, dynamodb=session.resource("dynamodb"))

    by_stage = {r.stage: r for r in results}
    assert (by_stage["extract"].moved, by_stage["load"].moved, by_stage["load"].left) == (1, 1, 1)
    assert {r.how for r in results} == {"loop"}  # one run's messages: a move task cannot filter
    assert _bodies(sqs, stack.queue_urls["extract"]) == [extract_msg]
    assert _bodies(sqs, stack.queue_urls["load"]) == [load_a]
    assert _bodies(sqs, stack.dlq_urls["load"]) == [load_b]  # run-b's stays for its own redrive
    status = {p["page"]: p["status"] for p in manifest.progress("run-a")["users"].failed_pages}
    assert status == {1: "redriven", 3: "redriven"}
    assert manifest.progress("run-b")["users"].failed_pages[0]["status"] == "failed"
    text = redrive.render(results, "run-a")
    assert "load          1 messages back to the queue (loop), 1 of other runs left" in text


def test_a_redriven_page_moves_on_when_its_stage_succeeds(session, stack):  # noqa: F811
    manifest = Manifest(session.resource("dynamodb").Table(stack.manifest_table))
    (ref,) = _plan(manifest, "run-c", 1)
    manifest.record_failure(ref, "load", "Boom", final=True)
    assert manifest.mark_redriven(ref, "load") is True
    assert manifest.mark_redriven(ref, "load") is False  # only a failed page is marked

    assert manifest.advance(ref, "loaded", {"loaded": 5}) is True

    t = manifest.progress("run-c")["users"]
    assert (t.pages_loaded, t.loaded, t.failed_pages) == (1, 5, [])


def test_redrive_of_every_run_uses_an_sqs_message_move_task():
    sqs = boto3.client("sqs", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    manifest = _NoManifest()
    q = redrive.StageQueues(
        "load",
        "https://sqs/q",
        "arn:aws:sqs:eu-west-1:1:q",
        "https://sqs/dlq",
        "arn:aws:sqs:eu-west-1:1:dlq",
    )
    body = _s3_event(PageRef("run-x", "users", 4).key("transformed", "mysql"))
    with Stubber(sqs) as stub:
        stub.add_response(
            "receive_message",
            {"Messages": [{"MessageId": "m1", "ReceiptHandle": "h1", "Body": body}]},
        )
        stub.add_response("receive_message", {"Messages": []})
        stub.add_response(
            "change_message_visibility",
            {},
            {"QueueUrl": "https://sqs/dlq", "ReceiptHandle": "h1", "VisibilityTimeout": 0},
        )
        stub.add_response(
            "start_message_move_task",
            {"TaskHandle": "task-handle-123456"},
            {"SourceArn": q.dlq_arn, "DestinationArn": q.queue_arn},
        )
        stub.add_response(
            "list_message_move_tasks",
            {"Results": [{"Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": 1}]},
        )
        (r,) = redrive.redrive(sqs, manifest, [q], move_task=True)
        stub.assert_no_pending_responses()
    assert (r.how, r.moved, [p.label for p in r.pages]) == ("move-task", 1, ["users#4"])
    assert manifest.marked == [("run-x", "users", 4)]


class _NoManifest:
    """Records which pages redrive marks (the move-task test has no manifest table)."""

    def __init__(self):
        self.marked = []

    def mark_redriven(self, ref: PageRef, stage: str) -> bool:
        self.marked.append((ref.run_id, ref.table, ref.page))
        return True


def test_resume_starts_a_named_execution_and_status_follows_it(session, stack, capsys):  # noqa: F811
    manifest = Manifest(session.resource("dynamodb").Table(stack.manifest_table))
    _plan(manifest, "run-r", 2)
    sfn = session.client("stepfunctions")

    arn = operate.resume_execution(
        stack, "run-r", dynamodb=session.resource("dynamodb"), stepfunctions=sfn
    )

    assert arn == stack.execution_arn("run-r-resume-1")
    assert json.loads(sfn.describe_execution(executionArn=arn)["input"]) == {
        "resume": True,
        "run_id": "run-r",
    }
    manifest.set_run("run-r", resumes=1)  # what the Resume state records
    again = operate.resume_execution(
        stack, "run-r", dynamodb=session.resource("dynamodb"), stepfunctions=sfn
    )
    assert again == stack.execution_arn("run-r-resume-2")
    assert cli.main(["resume", "--stack", STACK, "--run", "run-r", "--no-wait"]) == 0
    assert "run-r-resume-" in capsys.readouterr().err


def test_resume_and_redrive_of_an_unknown_run_say_so(session, stack):  # noqa: F811
    with pytest.raises(SluiceError, match="no run nope on stack sluice-ops"):
        operate.resume_execution(
            stack,
            "nope",
            dynamodb=session.resource("dynamodb"),
            stepfunctions=session.client("stepfunctions"),
        )
    with pytest.raises(SluiceError, match="no run nope on stack sluice-ops"):
        operate.redrive_stack(
            stack, "nope", sqs=session.client("sqs"), dynamodb=session.resource("dynamodb")
        )


def test_the_cli_needs_to_know_where_the_run_is(capsys):
    assert cli.main(["status", "--run", "r1"]) == 1
    assert "--stack NAME (a deployed stack) or --local" in capsys.readouterr().err
    assert cli.main(["redrive", "--local"]) == 1
    assert "--local needs --run" in capsys.readouterr().err
