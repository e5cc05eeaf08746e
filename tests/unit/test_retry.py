"""The retry policy for a page's MySQL work: what is transient, how long it waits, when it
gives up (the failures themselves, on the real server: tests/integration/test_mysql_resilience.py)."""

from __future__ import annotations

import pymysql
import pytest
from sluice import retry
from sluice.db import ConnectError
from sluice.errors import PageError, SluiceError


def lost() -> pymysql.err.OperationalError:
    return pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    seen: list[float] = []
    monkeypatch.setattr(retry, "pause", seen.append)
    return seen


def failing(errors: list[BaseException], result="done"):
    """A page's work that raises each of `errors` in turn, then returns `result`."""
    calls: list[int] = []

    def work():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    work.calls = calls
    return work


@pytest.mark.parametrize("code", [1205, 1213, 1927, 2003, 2006, 2013, 1053])
def test_connection_and_lock_errors_are_transient(code):
    assert retry.is_transient(pymysql.err.OperationalError(code, "x"))


@pytest.mark.parametrize("code", [1045, 1146, 1064, 1366])
def test_errors_about_the_request_are_not(code):
    assert not retry.is_transient(pymysql.err.OperationalError(code, "x"))


def test_a_refused_connection_is_transient_through_connect_error():
    try:
        try:
            raise pymysql.err.OperationalError(2003, "Can't connect to MySQL server")
        except pymysql.err.OperationalError as exc:
            raise ConnectError("cannot connect to mysql://u@h:1/") from exc
    except ConnectError as exc:
        assert retry.error_code(exc) == 2003
        assert retry.is_transient(exc)


def test_waits_are_full_jitter_under_an_exponential_bound():
    policy = retry.Policy(base_seconds=1.0, max_wait_seconds=5.0)
    assert [policy.wait(n, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 5, 5]
    assert policy.wait(3, rand=lambda: 0.0) == 0.0
    assert policy.wait(3, rand=lambda: 0.5) == 2.0


def test_a_transient_failure_is_retried_until_the_work_succeeds(waits):
    work = failing([lost(), pymysql.err.OperationalError(1205, "Lock wait timeout")])
    assert retry.call("page t#1", work, retry.Policy(retries=3)) == "done"
    assert len(work.calls) == 3
    assert len(waits) == 2


def test_retries_are_bounded_and_the_error_names_the_page(waits):
    work = failing([lost()] * 10)
    with pytest.raises(PageError) as failed:
        retry.call("page orders#7 of run r1 (extract)", work, retry.Policy(retries=2))
    assert len(work.calls) == 3 and len(waits) == 2
    message = str(failed.value)
    assert message.startswith("page orders#7 of run r1 (extract): MySQL error 2013")
    assert "gave up after 3 attempts" in message
    assert isinstance(failed.value.__cause__, pymysql.err.OperationalError)


def test_no_attempt_starts_after_the_deadline(waits):
    work = failing([lost()] * 10)
    with pytest.raises(PageError):
        retry.call("page t#1", work, retry.Policy(retries=5, deadline_seconds=0))
    assert len(work.calls) == 1 and waits == []


def test_other_errors_fail_at_once_unchanged(waits):
    refused = pymysql.err.OperationalError(1045, "Access denied")
    work = failing([refused])
    with pytest.raises(pymysql.err.OperationalError) as failed:
        retry.call("page t#1", work, retry.Policy())
    assert failed.value is refused and len(work.calls) == 1 and waits == []


def test_a_statement_timeout_fails_the_page_without_retrying(waits):
    work = failing([pymysql.err.OperationalError(1969, "max_statement_time exceeded")])
    with pytest.raises(PageError, match=r"page t#1: the source ended the read at its statement"):
        retry.call("page t#1", work, retry.Policy())
    assert len(work.calls) == 1 and waits == []


def test_the_driver_failing_in_its_cleanup_does_not_hide_a_lost_connection(waits):
    # pymysql closing an unbuffered cursor on a killed connection raises AttributeError from
    # inside the driver while the lost connection (2013) is being handled.
    def cleanup_fails():
        try:
            raise lost()
        except pymysql.err.OperationalError:
            pymysql.connections.Connection._read_bytes(_Closed(), 4)

    calls: list[int] = []

    def work():
        calls.append(1)
        if len(calls) == 1:
            cleanup_fails()
        return "done"

    assert retry.call("page t#1", work, retry.Policy()) == "done"
    assert len(waits) == 1


class _Closed:
    """A pymysql connection after _force_close: no socket, no file."""

    _sock = None
    _rfile = None
    _read_timeout = None

    def _force_close(self) -> None:
        """Already closed."""


def test_bad_retry_settings_are_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("SLUICE_MYSQL_RETRIES", "many")
    with pytest.raises(SluiceError, match="SLUICE_MYSQL_RETRIES='many'"):
        retry.Policy.from_env()
    monkeypatch.setenv("SLUICE_MYSQL_RETRIES", "2")
    monkeypatch.setenv("SLUICE_MYSQL_RETRY_BASE_SECONDS", "0.25")
    assert retry.Policy.from_env() == retry.Policy(retries=2, base_seconds=0.25)
