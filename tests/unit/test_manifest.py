"""The run manifest under moto: page status only moves forward, counts are set not added."""

from __future__ import annotations

import pytest
from sluice.manifest import Manifest
from sluice.staging import PageRef

RUN = "r1"


@pytest.fixture
def manifest(manifest_table) -> Manifest:
    table = manifest_table
    m = Manifest(table)
    pages = [(PageRef(RUN, "orders", p), {"lo": None, "hi": None}) for p in (1, 2)]
    pages.append((PageRef(RUN, "users", 1), {"lo": None, "hi": None}))
    m.record_plan(
        RUN,
        {"target_kind": "mysql"},
        [
            {"table": "orders", "target_table": "orders", "pages": 2, "path": "lambda"},
            {"table": "users", "target_table": "people", "pages": 1, "path": "lambda"},
        ],
        pages,
    )
    return m


def page_item(m: Manifest, table: str, page: int) -> dict:
    return m.table.get_item(Key={"pk": f"RUN#{RUN}", "sk": f"PAGE#{table}#{page:06d}"})["Item"]


def test_plan_records_run_tables_and_pending_pages(manifest):
    assert manifest.run(RUN)["status"] == "running"
    progress = manifest.progress(RUN)
    assert set(progress) == {"orders", "users"}
    assert progress["users"].target_table == "people"
    assert progress["orders"].pages == 2
    assert progress["orders"].status_counts == {"pending": 2}
    assert not progress["orders"].done


def test_a_page_moves_forward_and_never_back(manifest):
    ref = PageRef(RUN, "orders", 1)
    assert manifest.advance(ref, "extracted", {"extracted": 10}, started_at=100.0)
    assert manifest.advance(ref, "loaded", {"loaded": 10})
    assert not manifest.advance(ref, "transformed", {"transformed": 3})  # a late duplicate
    item = page_item(manifest, "orders", 1)
    assert item["status"] == "loaded"
    assert "transformed" not in item


def test_a_repeated_stage_sets_the_same_counts_instead_of_adding(manifest):
    ref = PageRef(RUN, "orders", 2)
    for _ in range(3):
        assert manifest.advance(ref, "extracted", {"extracted": 7})
    assert page_item(manifest, "orders", 2)["extracted"] == 7
    assert manifest.progress(RUN)["orders"].extracted == 7


def test_failures_count_attempts_and_only_the_final_one_marks_the_page_failed(manifest):
    ref = PageRef(RUN, "users", 1)
    manifest.record_failure(ref, "extract", "boom 1", final=False)
    assert page_item(manifest, "users", 1)["status"] == "pending"
    manifest.record_failure(ref, "extract", "boom 2", final=True)
    (failed,) = manifest.progress(RUN)["users"].failed_pages
    assert failed == {
        "page": 1,
        "status": "failed",
        "stage": "extract",
        "error": "boom 2",
        "attempts": 2,
    }


def test_a_redriven_failed_page_can_complete(manifest):
    ref = PageRef(RUN, "users", 1)
    manifest.record_failure(ref, "load", "throttled", final=True)
    assert manifest.advance(ref, "loaded", {"loaded": 4})
    users = manifest.progress(RUN)["users"]
    assert users.done and users.loaded == 4 and users.failed_pages == []


def test_progress_sums_counts_over_pages(manifest):
    for page, n in ((1, 5), (2, 6)):
        ref = PageRef(RUN, "orders", page)
        manifest.advance(ref, "transformed", {"extracted": n, "transformed": n - 1, "rejected": 1})
        manifest.advance(ref, "loaded", {"loaded": n - 1})
    orders = manifest.progress(RUN)["orders"]
    assert (orders.extracted, orders.transformed, orders.rejected, orders.loaded) == (11, 9, 2, 9)
    assert orders.done
    assert orders.extracted == orders.loaded + orders.rejected


def test_progress_names_each_unfinished_page_and_when_a_page_last_moved(manifest):
    manifest.advance(PageRef(RUN, "orders", 1), "loaded", {"loaded": 3})
    manifest.advance(PageRef(RUN, "orders", 2), "extracted", {"extracted": 3})
    manifest.record_failure(PageRef(RUN, "users", 1), "load", "Boom", final=True)

    progress = manifest.progress(RUN)

    assert progress["orders"].unfinished_pages == [{"page": 2, "status": "extracted"}]
    assert progress["users"].unfinished_pages == []  # failed: listed with its error instead
    assert progress["users"].failed_pages[0]["error"] == "Boom"
    assert progress["orders"].last_change is not None


def test_a_run_whose_waiting_pages_stopped_moving_fails_naming_them(
    manifest, progress_of, monkeypatch
):
    import time

    from sluice import stages

    manifest.advance(PageRef(RUN, "orders", 1), "loaded", {"loaded": 3})
    manifest.advance(PageRef(RUN, "users", 1), "loaded", {"loaded": 3})

    fresh = progress_of({"started_at": time.time()})
    assert (fresh["done"], fresh["failed"], fresh["stalled"]) == (False, False, False)

    later = time.time() + 61
    monkeypatch.setattr(stages.time, "time", lambda: later)
    stale = progress_of({"started_at": later - 120})
    assert (stale["done"], stale["failed"], stale["stalled"]) == (False, True, True)


@pytest.fixture
def progress_of(manifest, monkeypatch):
    """stages.progress over the fixture's manifest (no dead-letter queues)."""
    from sluice import stages
    from sluice.config import Settings

    monkeypatch.setattr(stages, "dlq_depths", lambda ctx: {})
    monkeypatch.setattr(stages.Context, "manifest", property(lambda self: manifest))
    ctx = stages.Context(Settings("b", "m", "", {}, 3, False, 1, 86400, stall_seconds=60))
    return lambda event, **kwargs: stages.progress(ctx, {"run_id": RUN, **event}, **kwargs)


def test_a_check_of_the_last_pages_waits_for_them_and_returns_when_they_are_done(
    manifest, progress_of
):
    import threading
    import time

    from sluice.local.moto_hooks import one_call_at_a_time

    manifest.advance(PageRef(RUN, "orders", 1), "loaded", {"loaded": 3})

    def finish():  # the last two pages loaded 0.6 s into the check
        time.sleep(0.6)
        for ref in (PageRef(RUN, "orders", 2), PageRef(RUN, "users", 1)):
            manifest.advance(ref, "loaded", {"loaded": 3})

    with one_call_at_a_time():  # the thread writes while the check reads
        loader = threading.Thread(target=finish)
        started = time.monotonic()
        loader.start()
        report = progress_of({}, wait_until=started + 10)
        waited = time.monotonic() - started
        loader.join()
    assert (report["done"], report["pages_loaded"], report["failed"]) == (True, 3, False)
    assert 0.6 <= waited < 5  # back within a check of the last page, not at the poll's end


def test_a_check_waits_for_the_last_pages_until_its_poll_is_up(manifest, progress_of):
    import time

    manifest.advance(PageRef(RUN, "orders", 1), "loaded", {"loaded": 3})
    started = time.monotonic()
    report = progress_of({}, wait_until=started + 0.8)
    waited = time.monotonic() - started
    assert (report["done"], report["pages_loaded"]) == (False, 1)
    assert 0.5 <= waited < 0.8 + 0.5


def test_a_check_returns_at_once_with_more_pages_left_or_a_page_failed(
    manifest, progress_of, monkeypatch
):
    import time

    from sluice import config

    monkeypatch.setattr(config, "TAIL_PAGES", 2)  # 3 unfinished: not yet the run's tail
    started = time.monotonic()
    assert not progress_of({}, wait_until=started + 10)["done"]
    monkeypatch.setattr(config, "TAIL_PAGES", 4)
    manifest.record_failure(PageRef(RUN, "users", 1), "load", "Boom", final=True)
    assert progress_of({}, wait_until=started + 10)["failed"]
    assert progress_of({})["pages_loaded"] == 0  # without wait_until (not a Lambda): no wait
    assert time.monotonic() - started < 2


def test_a_check_waits_at_most_a_poll_and_ends_5_s_before_the_function_s_timeout():
    import time

    from sluice.stages import tail_wait_until

    now = time.monotonic()
    assert tail_wait_until({"poll_seconds": 15}, 60_000) - now == pytest.approx(15, abs=0.5)
    assert tail_wait_until({"poll_seconds": 15}, 8_000) - now == pytest.approx(3, abs=0.5)
    assert tail_wait_until({"poll_seconds": 15}, 2_000) - now == pytest.approx(0, abs=0.5)
    assert tail_wait_until({}, 60_000) - now == pytest.approx(0, abs=0.5)


def test_a_check_that_would_end_past_its_deadline_is_not_started(
    manifest, progress_of, monkeypatch
):
    import time

    manifest.advance(PageRef(RUN, "orders", 1), "loaded", {"loaded": 3})
    read = manifest.progress

    def slow(run_id):  # a manifest that takes 0.4 s to read
        time.sleep(0.4)
        return read(run_id)

    monkeypatch.setattr(manifest, "progress", slow)
    started = time.monotonic()
    report = progress_of({}, wait_until=started + 1.0)
    # One read (0.4 s); a second, after 0.25 s, would end at 1.05 s: past the deadline.
    assert report["pages_loaded"] == 1 and time.monotonic() - started < 1.0


def test_a_check_waits_for_as_many_last_pages_as_the_run_loads_in_a_poll(
    manifest, progress_of, monkeypatch
):
    import time

    from sluice import config

    monkeypatch.setattr(config, "TAIL_PAGES", 1)  # 2 unfinished: above it
    page = PageRef(RUN, "orders", 1)
    manifest.advance(page, "loaded", {"loaded": 3}, started_at=time.time() - 1.8)
    # One page loaded since the first started 1.8 s ago: 0.56 pages a second, and slowing.
    started = time.monotonic()
    assert not progress_of({"poll_seconds": 2}, wait_until=started + 10)["done"]
    assert time.monotonic() - started < 1  # 1.1 pages in a 2 s poll: fewer than the 2 left
    report = progress_of({"poll_seconds": 6}, wait_until=time.monotonic() + 0.8)
    assert time.monotonic() - started >= 0.5  # 3.3 pages in a 6 s poll: it waited for them
    assert (report["done"], report["pages_loaded"]) == (False, 1)
    # A page retrying (an error, retries left): the pace is no guide, the check returns.
    manifest.record_failure(PageRef(RUN, "users", 1), "load", "Boom", final=False)
    started = time.monotonic()
    assert not progress_of({"poll_seconds": 6}, wait_until=started + 10)["failed"]
    assert time.monotonic() - started < 1


def test_the_pace_slows_while_no_page_loads():
    import time

    from sluice.manifest import TableProgress
    from sluice.stages import _pages_per_second

    t = TableProgress("orders", pages=10, status_counts={"loaded": 4})
    assert _pages_per_second({"orders": t}) == 0.0  # no page started: no pace
    t.first_started = time.time() - 2
    assert _pages_per_second({"orders": t}) == pytest.approx(2.0, rel=0.05)
    t.first_started = time.time() - 8  # the same 4 pages, 6 s later: a quarter as fast
    assert _pages_per_second({"orders": t}) == pytest.approx(0.5, rel=0.05)
