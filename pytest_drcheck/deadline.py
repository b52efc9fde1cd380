"""Run a callable with a deadline that is enforced even if the callable never returns.

Network libraries mostly honour their own timeouts, but "mostly" is not enough for a drill: a
hung host must not hang the run. The call runs on a reused thread of an elastic pool (one is
started only when none is free, so a call never queues); the process's one timer thread fails
the call at its deadline, we stop waiting and report, and the stuck thread is abandoned (it dies
with the process at the latest) and whatever it returns later is discarded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pytest_drcheck.pool import DeadlinePool
from pytest_drcheck.timer import DeadlineExceeded

__all__ = ["DeadlineExceeded", "call_with_deadline"]

T = TypeVar("T")

# Idle threads kept for the next calls; more start while more calls run at once.
_calls = DeadlinePool(4, "drcheck-call", elastic=True)


def call_with_deadline(function: Callable[[], T], seconds: float, name: str = "drcheck") -> T:
    return _calls.submit(function, max(0.0, seconds), name).result()
