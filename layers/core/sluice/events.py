"""The shapes of what arrives at a stage: SQS page messages and S3 notifications in SQS."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import unquote_plus

from .staging import PageRef


def s3_object_keys(body: str | dict) -> list[str]:
    """Object keys of an S3 notification (as SQS delivers it), decoded (S3 URL-encodes them).

    S3 sends an `s3:TestEvent` when a notification is configured: it names no object.
    """
    doc = json.loads(body) if isinstance(body, str) else body
    if doc.get("Event") == "s3:TestEvent":
        return []
    return [
        unquote_plus(r["s3"]["object"]["key"])
        for r in doc.get("Records", [])
        if r.get("eventName", "").startswith("ObjectCreated")
    ]


def run_page_stage(
    ctx, stage: str, work: Callable[[], dict], ref: PageRef, receive_count: int
) -> dict:
    """Run one page's work; on failure note it in the manifest (final once retries are spent)
    and re-raise so the batch processor reports the record as failed."""
    try:
        return work()
    except Exception as exc:
        final = receive_count >= ctx.settings.max_receive_count
        ctx.manifest.record_failure(ref, stage, f"{type(exc).__name__}: {exc}", final=final)
        raise
