"""Settings every stage reads from its environment (set by template.yaml)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import SluiceError

# A run's last pages: a progress check that finds at most TAIL_PAGES unfinished, or no more
# than the run loads in a poll's time at its pace (none retrying), and none failed, reads the
# manifest again every TAIL_CHECK_SECONDS until they are done, for up to a poll, instead of
# leaving them to the next poll: the run ends when its last page does, not up to PollSeconds
# later (a 1M-row local run, polling every second, verified 0.62 s after its last page;
# 0.06-0.23 s with this, bench/RESULTS.md). The pace matters on AWS, where a run loads many
# pages in a poll of 15 s. Earlier checks read the manifest once, as a long run's polls should.
TAIL_PAGES = 4
TAIL_CHECK_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Settings:
    bucket: str
    manifest_table: str
    extract_queue_url: str
    dlq_urls: dict[str, str]
    max_receive_count: int
    create_missing_tables: bool
    poll_seconds: int
    run_timeout_seconds: int
    # A run whose unfinished pages have not moved for this long ends failed, naming them:
    # their messages are gone (deleted by hand, expired), so waiting longer brings nothing.
    stall_seconds: int = 3600
    # Load workers that may run at once (the event source's maximum concurrency): each holds
    # this fraction of a table's write-rate cap.
    load_concurrency: int = 1

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ

        def need(name: str) -> str:
            if not env.get(name):
                raise SluiceError(f"environment variable {name} is not set (template.yaml sets it)")
            return env[name]

        return cls(
            bucket=need("SLUICE_BUCKET"),
            manifest_table=need("SLUICE_MANIFEST_TABLE"),
            extract_queue_url=env.get("SLUICE_EXTRACT_QUEUE_URL", ""),
            dlq_urls={
                stage: env[f"SLUICE_{stage.upper()}_DLQ_URL"]
                for stage in ("extract", "transform", "load")
                if env.get(f"SLUICE_{stage.upper()}_DLQ_URL")
            },
            max_receive_count=int(env.get("SLUICE_MAX_RECEIVE_COUNT", "3")),
            create_missing_tables=env.get("SLUICE_CREATE_MISSING_TABLES", "false").lower()
            == "true",
            poll_seconds=int(env.get("SLUICE_POLL_SECONDS", "15")),
            run_timeout_seconds=int(env.get("SLUICE_RUN_TIMEOUT_SECONDS", "86400")),
            stall_seconds=int(env.get("SLUICE_STALL_SECONDS", "3600")),
            load_concurrency=max(1, int(env.get("SLUICE_LOAD_CONCURRENCY") or "1")),
        )
