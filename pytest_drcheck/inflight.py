"""Identical work running at the same time is done once ("single flight").

Several checks often need the same reading at the same moment (one source's disk counters for
an entry's link and throttle subjects, one DRS description for a host's checks). The first
caller computes; the others wait for its answer, or its exception. Nothing is kept afterwards:
a later caller computes afresh, so state that changes during a drill is read again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class InFlight(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Hashable, Future[T]] = {}

    def share(self, key: Hashable, compute: Callable[[], T], timeout: float | None = None
              ) -> T:
        """compute()'s answer, shared with the callers asking for ``key`` meanwhile; a wait
        longer than ``timeout`` raises TimeoutError (the computing caller never times out
        here: its own work carries its own deadlines)."""
        with self._lock:
            future = self._running.get(key)
            owner = future is None
            if future is None:
                future = self._running[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except Exception as exc:  # re-raised in every caller that waits for it
                future.set_exception(exc)
            finally:
                with self._lock:
                    self._running.pop(key, None)
        return future.result(timeout=timeout)
