"""What arrives at a stage: S3 notifications delivered through SQS, and failure bookkeeping."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from sluice.events import run_page_stage, s3_object_keys
from sluice.staging import EXTRACTED, PageRef


def notification(*keys: str, event: str = "ObjectCreated:Put") -> dict:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": event,
                "s3": {"bucket": {"name": "b"}, "object": {"key": k, "size": 1}},
            }
            for k in keys
        ]
    }


def test_s3_test_event_names_no_object():
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"})
    assert s3_object_keys(body) == []


def test_keys_are_url_decoded_plus_as_space_and_percent_escapes():
    body = json.dumps(
        notification(
            "runs/r1/extracted/order%24lines/p000001.extracted.arrow",
            "runs/r1/extracted/a+b/caf%C3%A9%2Bx%25.arrow",
        )
    )
    assert s3_object_keys(body) == [
        "runs/r1/extracted/order$lines/p000001.extracted.arrow",
        "runs/r1/extracted/a b/café+x%.arrow",
    ]


def test_a_decoded_key_parses_to_its_page():
    (key,) = s3_object_keys(notification("runs/r%2D1/extracted/t%24x/p000042.extracted.arrow"))
    assert PageRef.from_key(key) == (PageRef("r-1", "t$x", 42), EXTRACTED)


def test_only_object_created_records_count_and_dict_bodies_work():
    doc = notification("a", event="ObjectRemoved:Delete")
    doc["Records"] += notification("b", event="ObjectCreated:CompleteMultipartUpload")["Records"]
    assert s3_object_keys(doc) == ["b"]
    assert s3_object_keys({}) == []


class FakeManifest:
    def __init__(self):
        self.failures = []

    def record_failure(self, ref, stage, error, *, final):
        self.failures.append((ref, stage, error, final))


def ctx(max_receive_count: int = 3):
    return SimpleNamespace(
        settings=SimpleNamespace(max_receive_count=max_receive_count), manifest=FakeManifest()
    )


def test_successful_stage_work_returns_its_result_and_records_nothing():
    c = ctx()
    assert run_page_stage(c, "load", lambda: {"loaded": 5}, PageRef("r", "t", 1), 1) == {
        "loaded": 5
    }
    assert c.manifest.failures == []


@pytest.mark.parametrize(("receive_count", "final"), [(1, False), (2, False), (3, True), (4, True)])
def test_failed_stage_work_is_recorded_final_only_when_retries_are_spent(receive_count, final):
    c = ctx(max_receive_count=3)
    ref = PageRef("r", "t", 1)

    def boom():
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError, match="source went away"):
        run_page_stage(c, "extract", boom, ref, receive_count)
    assert c.manifest.failures == [(ref, "extract", "RuntimeError: source went away", final)]
