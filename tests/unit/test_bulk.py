"""The bulk path's pure parts: inlined predicates, the write-capacity bucket, job arguments,
which ranges a re-run processes, and a failed job's reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sluice.bulk import (
    BulkJob,
    checksum_expr,
    inline_predicate,
    job_failure_reason,
    sql_literal,
    unfinished,
)
from sluice.errors import SluiceError
from sluice.keys import PageRange
from sluice.ratelimit import TokenBucket, write_units


def test_integers_and_numbers_are_inlined_as_digits_only_when_they_are_digits():
    assert sql_literal("42", "int") == "42"
    assert sql_literal(-7, "int") == "-7"
    assert sql_literal("18446744073709551615", "int") == "18446744073709551615"
    assert sql_literal("-12.50", "decimal") == "-12.50"
    assert sql_literal("1.5e-07", "float") == "1.5e-07"
    for bad in ("1 OR 1=1", "1;DROP TABLE t", "0x1f", "", " 1", "1.2.3", True):
        with pytest.raises(SluiceError):
            sql_literal(bad, "int" if bad != "1.2.3" else "decimal")


def test_strings_are_inlined_as_utf8mb4_hex_so_no_character_escapes_anything():
    assert sql_literal("it's", "text") == "_utf8mb4 X'69742773'"
    backslash_quote = "a" + chr(92) + chr(39) + "b"
    assert sql_literal(backslash_quote, "text") == "_utf8mb4 X'615c2762'"
    assert sql_literal("😀", "text") == "_utf8mb4 X'f09f9880'"
    assert sql_literal("2024-01-02 03:04:05.123456", "datetime").startswith("_utf8mb4 X'")


def test_bytes_are_inlined_as_hex():
    assert sql_literal(b"\x00'\xff", "binary") == "X'0027ff'"


@given(st.text())
def test_any_string_inlines_to_one_hex_literal(text):
    lit = sql_literal(text, "text")
    assert lit == f"_utf8mb4 X'{text.encode().hex()}'"
    assert set(lit[len("_utf8mb4 X'") : -1]) <= set("0123456789abcdef")


def test_inline_predicate_has_range_predicates_shape_with_each_value_in_place():
    sql = inline_predicate(["order_id", "code"], ["int", "text"], ["5", "b"], ["9", "a"])
    assert sql == (
        "((`order_id` > 5) OR (`order_id` = 5 AND `code` > _utf8mb4 X'62')) AND "
        "NOT ((`order_id` > 9) OR (`order_id` = 9 AND `code` > _utf8mb4 X'61'))"
    )
    assert inline_predicate(["id"], ["int"], None, None) == "TRUE"
    assert inline_predicate(["id"], ["int"], None, ["10"]) == "NOT ((`id` > 10))"


def test_a_value_with_a_placeholder_inside_cannot_shift_the_others():
    sql = inline_predicate(["a", "b"], ["text", "int"], ["%s", "1"], None)
    assert "%s" not in sql and sql.count("_utf8mb4 X'2573'") == 2


def test_checksum_expression_reads_text_as_utf8mb4_and_the_rest_as_printed():
    assert checksum_expr(["id", "code"], ["int", "text"]) == (
        "CRC32(CONCAT_WS(',', HEX(CAST(`id` AS BINARY)), HEX(CONVERT(`code` USING utf8mb4))))"
    )


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.slept.append(s)
        self.now += s


def test_token_bucket_holds_a_task_to_its_rate():
    clock = FakeClock()
    bucket = TokenBucket(100, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        bucket.take(50)  # 500 units at 100 a second: the first 100 are the initial burst
    assert clock.now == pytest.approx(4.0)


def test_token_bucket_lets_a_request_larger_than_a_burst_through_then_repays_it():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    bucket.take(25)
    bucket.take(1)
    assert clock.now == pytest.approx(1.6)


def test_a_zero_rate_never_waits():
    clock = FakeClock()
    TokenBucket(0, clock=clock, sleep=clock.sleep).take(10_000)
    assert clock.slept == []


def test_write_units_are_one_per_started_kilobyte():
    assert write_units(b"x") == 1
    assert write_units(b"x" * 1024) == 1
    assert write_units(b"x" * 1025) == 2


def test_job_arguments_from_glue_with_their_dashes():
    job = BulkJob.from_arguments(
        {
            "--run_id": "r1",
            "--table": "orders",
            "--ranges_key": "runs/r1/plan/bulk-orders.json",
            "--bucket": "b",
            "--manifest_table": "m",
            "--write_units_per_second": "400",
            "--target_secret_arn": "",
            "--extra-py-files": "s3://b/glue/sluice.zip",
        }
    )
    assert (job.run_id, job.table, job.write_units_per_second) == ("r1", "orders", 400.0)
    assert job.target_secret_arn == ""
    with pytest.raises(SluiceError, match="--ranges_key"):
        BulkJob.from_arguments({"run_id": "r", "table": "t", "bucket": "b", "manifest_table": "m"})


def test_a_rerun_processes_only_pages_not_yet_at_their_last_stage():
    ranges = [PageRange(i, None, None) for i in (1, 2, 3, 4)]
    statuses = {1: "loaded", 2: "failed", 3: "pending", 4: "transformed"}
    assert [r.page for r in unfinished(ranges, statuses, "loaded")] == [2, 3, 4]
    assert [r.page for r in unfinished(ranges, statuses, "transformed")] == [2, 3]


def test_a_failed_job_is_reported_by_its_error_message():
    cause = json.dumps({"JobRunState": "FAILED", "ErrorMessage": "SluiceError: no source"})
    assert job_failure_reason({"error": "States.TaskFailed", "cause": cause}) == (
        "bulk job FAILED: SluiceError: no source"
    )
    assert job_failure_reason(
        {"error": "Glue.ConcurrentRunsExceededException", "cause": "busy"}
    ) == ("bulk job failed: Glue.ConcurrentRunsExceededException: busy")


def test_a_tables_path_is_checked_with_its_json_path_and_typed():
    from sluice.contract import parse, problems

    doc = {
        "version": 1,
        "source": {"database": "shop"},
        "target": {"kind": "mysql", "database": "copy"},
        "tables": [
            {"source": "orders", "key": ["id"], "target": {}, "path": "bulk"},
            {"source": "users", "key": ["id"], "target": {}},
        ],
    }
    assert [t.path for t in parse(doc).tables] == ["bulk", None]
    doc["tables"][1]["path"] = "fast"
    assert problems(doc) == [
        "$.tables[1].path: 'fast' is not one of the allowed values: use one of 'lambda', 'bulk'"
    ]
