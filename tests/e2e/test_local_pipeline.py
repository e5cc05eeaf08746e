"""A local run goes through the real state machine and the SQS queues of template.yaml."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.mysql, pytest.mark.slow]

# Queues fed by S3 notifications also get the one s3:TestEvent that S3 sends each queue when
# the bucket's notifications are configured; the handler skips it, the queue counts it.
S3_TEST_EVENTS = {"ExtractQueue": 0, "TransformQueue": 1, "LoadQueue": 1}


@pytest.mark.parametrize("run", ["mysql_run", "dynamodb_run"])
def test_local_run_goes_through_the_state_machine_and_every_queue(run, request):
    summary = request.getfixturevalue(run).summary
    assert summary["status"] == "SUCCEEDED", summary["verdict"]

    events = set(summary["execution"]["history_event_types"])
    # The Distributed Map that fans page messages out, and the Lambda task states around it.
    assert {"MapStateEntered", "MapRunStarted", "MapRunSucceeded", "MapStateExited"} <= events
    assert {"TaskStateEntered", "TaskStateExited"} <= events
    calls = summary["invocations"]
    assert calls["PlanFunction"] == 1
    assert calls["ProgressFunction"] >= 1
    assert calls["VerifyFunction"] == 1

    pages = sum(t["pages"] for t in summary["tables"].values())
    assert pages >= len(summary["tables"]) > 0
    assert all(t["pages_loaded"] == t["pages"] for t in summary["tables"].values())
    consumed = summary["sqs_messages"]["consumed"]
    # Every page went through each stage's queue exactly once (a retried message is counted
    # as failed, then consumed once).
    assert consumed == {queue: pages + extra for queue, extra in S3_TEST_EVENTS.items()}
    # Each page message was handled by its stage's function, in batches.
    assert 1 <= calls["ExtractFunction"] <= consumed["ExtractQueue"]
    assert 1 <= calls["TransformFunction"] <= consumed["TransformQueue"]
    assert 1 <= calls["LoadFunction"] <= consumed["LoadQueue"]
