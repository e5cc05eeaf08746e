"""Retrying a page's MySQL work after a transient failure: which errors, how often, how long.

A page is read or loaded again from its start, never resumed: an extract re-runs its keyset
read into a fresh Arrow file, a MySQL load re-runs the page's LOAD DATA transactions (the
failed one was rolled back; those already committed are REPLACEd or IGNOREd again, which
leaves the table as if loaded once). A failure that outlasts the retries fails the page with
a message naming it, and the queue delivers it again later (up to MaxReceiveCount).
"""

from __future__ import annotations

import logging
import os
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pymysql

from . import db
from .errors import PageError, SluiceError

log = logging.getLogger(__name__)  # under Powertools' "sluice" logger in the handlers

T = TypeVar("T")

# Errors that say nothing about the page, only about the connection or the moment: the same
# work can succeed on a fresh connection a little later.
TRANSIENT = {
    0: "connection closed",  # pymysql's InterfaceError on a socket it already closed
    1040: "too many connections",
    1053: "server shutdown in progress",
    1203: "too many connections for the account (max_user_connections)",
    1152: "connection aborted",
    1158: "network read error",
    1159: "network read timeout",
    1160: "network write error",
    1161: "network write timeout",
    1205: "lock wait timeout",
    1213: "deadlock",
    1290: "server is read-only (a failover in progress)",
    1317: "query interrupted (KILL QUERY)",
    1836: "server is read-only (a failover in progress)",
    1927: "connection killed",
    2002: "cannot connect",
    2003: "cannot connect",
    2006: "server has gone away",
    2013: "lost connection during query",
    2055: "lost connection",
    4031: "disconnected by the server",
}

# The server ended a statement at the session's statement timeout. Not retried here: the
# same read would run as long again, past the worker's own time limit. The page fails with
# what to change, and the queue's redelivery bounds the attempts.
STATEMENT_TIMEOUT = {1969: "MariaDB max_statement_time", 3024: "MySQL max_execution_time"}


def error_code(exc: BaseException) -> int | None:
    """The MySQL error number behind `exc` (also through db.ConnectError), else None."""
    if isinstance(exc, db.ConnectError):
        exc = exc.__cause__
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    if _certificate_refused(exc):  # pymysql reports it as "cannot connect" (2003)
        return False
    return error_code(exc) in TRANSIENT


def _certificate_refused(exc: BaseException | None) -> bool:
    """Whether `exc` came of a server certificate that failed verification (the wrong CA
    bundle, or a name the certificate does not hold): it fails on every attempt."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def mysql_failure(exc: BaseException) -> BaseException | None:
    """The MySQL error that `exc` is, or that the driver was handling when it raised `exc`.

    Closing an unbuffered cursor whose connection was killed makes pymysql fail again inside
    its own cleanup (an AttributeError on the closed socket), which hides the lost connection
    that caused it: that one decides.
    """
    if isinstance(exc, pymysql.err.MySQLError | db.ConnectError):
        return exc
    if isinstance(exc.__context__, pymysql.err.MySQLError) and _raised_in_driver(exc):
        return exc.__context__
    return None


def _raised_in_driver(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith("pymysql")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, db.ConnectError):
        return str(exc)
    return str(exc.args[-1]) if exc.args else type(exc).__name__


@dataclass(frozen=True, slots=True)
class Policy:
    """How often and how long a page's work is tried again.

    Waits grow exponentially with full jitter (a random wait between 0 and the bound, so
    workers that failed together do not come back together); the defaults ride out a server
    restart or a failover of about a minute and stay well inside the extract and load
    functions' 300 s.
    """

    retries: int = 6  # after the first attempt
    base_seconds: float = 1.0  # the first wait's bound; doubled each time
    max_wait_seconds: float = 30.0  # no single wait is longer
    deadline_seconds: float = 150.0  # no new attempt starts later than this after the first

    @classmethod
    def from_env(cls) -> Policy:
        """SLUICE_MYSQL_RETRIES, SLUICE_MYSQL_RETRY_BASE_SECONDS,
        SLUICE_MYSQL_RETRY_MAX_WAIT_SECONDS, SLUICE_MYSQL_RETRY_DEADLINE_SECONDS."""
        d = cls()
        return cls(
            retries=int(_env_number("SLUICE_MYSQL_RETRIES", d.retries)),
            base_seconds=_env_number("SLUICE_MYSQL_RETRY_BASE_SECONDS", d.base_seconds),
            max_wait_seconds=_env_number("SLUICE_MYSQL_RETRY_MAX_WAIT_SECONDS", d.max_wait_seconds),
            deadline_seconds=_env_number("SLUICE_MYSQL_RETRY_DEADLINE_SECONDS", d.deadline_seconds),
        )

    def wait(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `retry` (1 for the first retry)."""
        return rand() * min(self.max_wait_seconds, self.base_seconds * 2 ** (retry - 1))


def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise SluiceError(f"{name}={text!r}: give a number, 0 or more")
    return value


def pause(seconds: float) -> None:
    """Wait between attempts (tests replace it to act between two attempts)."""
    time.sleep(seconds)


def call(what: str, work: Callable[[], T], policy: Policy | None = None) -> T:
    """Run `work` (a whole page's read or load, from its start), again after a transient
    MySQL error, until it succeeds or the policy's retries or deadline are spent.

    `work` takes its connections from db.pooled on each attempt: before a retry this worker's
    dead connections are dropped, so it gets fresh ones. `what` names the page in the log and
    in the error that gives up.
    """
    policy = policy or Policy.from_env()
    started = time.monotonic()
    attempt = 1
    while True:
        try:
            return work()
        except Exception as exc:
            failure = mysql_failure(exc)
            if failure is None:
                raise
            code = error_code(failure)
            if code in STATEMENT_TIMEOUT:
                seconds = db.source_statement_timeout()
                raise PageError(
                    f"{what}: the source ended the read at its statement timeout "
                    f"({STATEMENT_TIMEOUT[code]}, {seconds:g} s): lower the table's page_size "
                    "in the contract, or raise SLUICE_SOURCE_STATEMENT_TIMEOUT (keep it under "
                    "the extract function's timeout)"
                ) from exc
            if not is_transient(failure):
                raise
            elapsed = time.monotonic() - started
            if attempt > policy.retries or elapsed >= policy.deadline_seconds:
                raise PageError(
                    f"{what}: MySQL error {code} ({TRANSIENT.get(code, 'connection error')}: "
                    f"{_reason(failure)}); gave up after {attempt} attempts over "
                    f"{elapsed:.0f} s (SLUICE_MYSQL_RETRIES, SLUICE_MYSQL_RETRY_DEADLINE_SECONDS). "
                    "The page is tried again from its start when its message is delivered again"
                ) from exc
            wait = policy.wait(attempt)
            dropped = db.drop_dead()
            log.warning(
                "%s: MySQL error %s (%s), attempt %d of %d; %d dead connection(s) dropped, "
                "starting the page again in %.2f s",
                what,
                code,
                TRANSIENT.get(code, "connection error"),
                attempt,
                policy.retries + 1,
                dropped,
                wait,
                extra={"mysql_error": code, "attempt": attempt},
            )
            pause(wait)
            attempt += 1
