"""Soak: a 100,000-row migration with faults injected at random in every stage, redriven until
done, verified exact."""

from __future__ import annotations

from functools import partial

import pytest

from .conftest import TABLE, create_mixed_table, mysql_contract, run_to_completion
from .inject import (
    Duplicates,
    Faults,
    Rate,
    crash_extract_mid_page,
    crash_load_after_half,
    crash_transform,
)

pytestmark = [pytest.mark.mysql, pytest.mark.slow]

SOAK_ROWS, SOAK_PAGE = 100_000, 1_000  # 100 pages
SEED = 20_250_601
FAULT_RATE = 0.08  # of each stage's calls: a crash the queue's next delivery gets past
STICKY_RATE = 0.03  # of each stage's pages: a fault on every delivery, so the page ends in a DLQ
DUPLICATE_RATE = 0.05  # of S3 notifications: delivered once more
MAX_ROUNDS = 15


@pytest.fixture(scope="module")
def soak_source(session_source) -> str:
    return session_source("faults_soak", partial(create_mixed_table, rows=SOAK_ROWS))


def test_soak_100k_rows_with_random_faults_in_every_stage(
    soak_source, new_database, mysql_env, mysql_outcome, monkeypatch, tmp_path, report, capsys
):
    target = new_database("soak_dst")
    faults = Faults()
    crash_extract_mid_page(monkeypatch, faults, Rate(SEED + 1, FAULT_RATE, STICKY_RATE))
    crash_transform(monkeypatch, faults, Rate(SEED + 2, FAULT_RATE, STICKY_RATE), "mysql")
    crash_load_after_half(monkeypatch, faults, Rate(SEED + 3, FAULT_RATE, STICKY_RATE), "mysql")
    Duplicates(faults, Rate(SEED + 4, DUPLICATE_RATE, 0)).install(monkeypatch)

    done = run_to_completion(
        mysql_contract(soak_source, target, page_size=SOAK_PAGE), tmp_path, max_rounds=MAX_ROUNDS
    )

    outcome = mysql_outcome(soak_source, target)
    table = done.summary["tables"][TABLE]
    with capsys.disabled():
        print(
            f"\nsoak: {SOAK_ROWS:,} rows in {table['pages']} pages; faults at {FAULT_RATE:.0%} "
            f"of calls and {STICKY_RATE:.0%} of pages (every delivery) per stage, "
            f"{DUPLICATE_RATE:.0%} of S3 events duplicated; seed {SEED}\n"
            f"  faults injected: {faults} (total {faults.total})\n"
            f"  deliveries retried: {done.retried}; messages redriven from DLQs: "
            f"{done.redriven}; redrive rounds: {done.redrives}\n"
            f"  rows: source {outcome.source_rows:,}, target {outcome.target_rows:,}, lost "
            f"{outcome.lost}, duplicated {outcome.duplicated}, changed {outcome.changed}; "
            f"exact: {outcome.exact}; {done.seconds:.0f} s"
        )
    # Some pages ran out of deliveries and needed the redrive.
    assert done.redriven > 0
    assert all(faults.counts[k] > 0 for k in ("extract crash", "transform crash"))
    assert faults.counts["load crash after half"] > 0
    assert faults.counts["duplicate S3 event"] > 0
    report("soak: 100k rows, random faults", "mysql", faults, outcome, done)
