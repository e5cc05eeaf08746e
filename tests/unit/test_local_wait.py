"""LocalStack.wait: how it notices an execution's end, without a stack (its Step Functions
client and its clock stood in for)."""

from __future__ import annotations

import pytest
from sluice.local import runtime
from sluice.local.runtime import AFTER_TASK_CHECKS, AFTER_TASK_SECONDS, END_CHECK_SECONDS


class _Returned:
    """The stack's task-returned event: `wait` answers from `answers`, recording timeouts."""

    def __init__(self, answers: list[bool]):
        self.answers, self.timeouts = answers, []

    def wait(self, timeout: float) -> bool:
        self.timeouts.append(timeout)
        return self.answers.pop(0) if self.answers else False

    def clear(self) -> None:
        pass


@pytest.fixture
def stack(monkeypatch):
    """A LocalStack with nothing started, an execution RUNNING for `running` describes, and a
    clock that moves only when `wait` sleeps."""
    st = runtime.LocalStack.__new__(runtime.LocalStack)
    st._pool = None
    clock = [1000.0]
    sleeps: list[float] = []

    class Time:  # the runtime module's `time`, for this test alone
        @staticmethod
        def monotonic() -> float:
            return clock[0]

        @staticmethod
        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            clock[0] += seconds

    monkeypatch.setattr(runtime, "time", Time)
    st.sleeps, st.running = sleeps, [0]

    class Sfn:
        def describe_execution(self, executionArn):
            st.running[0] -= 1
            return {"status": "RUNNING" if st.running[0] >= 0 else "SUCCEEDED"}

    monkeypatch.setattr(runtime.aws, "client", lambda name: Sfn())
    return st


def test_after_a_task_returns_the_end_is_checked_every_20_ms(stack):
    stack._task_returned = _Returned([True])  # a Lambda task came back
    stack.running[0] = 3
    assert stack.wait("arn")["status"] == "SUCCEEDED"
    # One wait on the event, which a task set; then quick checks until the end was seen.
    assert stack._task_returned.timeouts == [END_CHECK_SECONDS]
    assert stack.sleeps == [AFTER_TASK_SECONDS] * 3


def test_quick_checks_stop_after_a_few_and_it_waits_for_the_next_task(stack):
    stack._task_returned = _Returned([True])
    stack.running[0] = AFTER_TASK_CHECKS + 2
    assert stack.wait("arn")["status"] == "SUCCEEDED"
    assert stack.sleeps == [AFTER_TASK_SECONDS] * (AFTER_TASK_CHECKS + 1)
    assert stack._task_returned.timeouts == [END_CHECK_SECONDS] * 2  # then: nothing returned


def test_progress_is_shown_at_most_every_half_second_and_once_at_the_end(stack):
    stack._task_returned = _Returned([True] * 40)  # a task back at every wait
    stack.running[0] = 40
    ticks = []
    stack.wait("arn", on_tick=lambda: ticks.append(runtime.time.monotonic()))
    assert len(ticks) >= 3
    assert all(b - a >= runtime.TICK_SECONDS for a, b in zip(ticks, ticks[1:-1], strict=False))
