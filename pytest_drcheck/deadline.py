"""Run a callable with a deadline that is enforced even if the callable never returns.

Network libraries mostly honour their own timeouts, but "mostly" is not enough for a drill: a
hung host must not hang the run. The call runs in a daemon thread; past the deadline we stop
waiting and report, and the thread is abandoned (it dies with the process at the latest).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceeded(Exception):
    pass


def call_with_deadline(function: Callable[[], T], seconds: float, name: str = "drcheck") -> T:
    future: Future[T] = Future()

    def runner() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(function())
        except BaseException as exc:  # re-raised in the caller's thread
            future.set_exception(exc)

    threading.Thread(target=runner, name=name, daemon=True).start()
    try:
        return future.result(timeout=max(0.0, seconds))
    except TimeoutError:
        raise DeadlineExceeded(f"no answer within {seconds:g} s") from None
