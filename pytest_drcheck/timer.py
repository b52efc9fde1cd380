"""One thread that fires every deadline of the process, from a heap.

A thread per deadline (``threading.Timer``, or a waiter thread per call) costs a thread start
and a stack for every check of a drill whose deadlines almost never fire; one timer thread
holding a heap of due times costs a heap push per deadline. Fired functions run on the timer
thread, so they must be quick (fail a future, set an event, queue a step).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger("pytest_drcheck.timer")


class DeadlineExceeded(Exception):
    pass


class Scheduled:
    """A scheduled call: fires once, unless cancelled first."""

    __slots__ = ("_function", "_lock", "_state")

    def __init__(self, function: Callable[[], None]) -> None:
        self._function = function
        self._lock = threading.Lock()
        self._state = "armed"

    def cancel(self) -> bool:
        """True if cancelled in time, False if it has already fired."""
        with self._lock:
            if self._state == "fired":
                return False
            self._state = "cancelled"
            return True

    def _claim(self) -> bool:
        with self._lock:
            if self._state != "armed":
                return False
            self._state = "fired"
            return True

    def _fire(self) -> None:
        if self._claim():
            try:
                self._function()
            except Exception:  # one bad callback must not stop every other deadline
                log.exception("a scheduled call failed")


class Timer:
    def __init__(self, name: str = "drcheck-timer") -> None:
        self._name = name
        self._wakeup = threading.Condition()
        self._heap: list[tuple[float, int, Scheduled]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def call_later(self, seconds: float, function: Callable[[], None]) -> Scheduled:
        entry = Scheduled(function)
        due = time.monotonic() + max(0.0, seconds)
        with self._wakeup:
            self._ensure_thread()
            heapq.heappush(self._heap, (due, next(self._order), entry))
            if self._heap[0][2] is entry:  # earlier than what the thread sleeps towards
                self._wakeup.notify()
        return entry

    def _ensure_thread(self) -> None:
        # A forked child inherits the heap but not the thread: start afresh there.
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        if self._pid != os.getpid():
            self._heap.clear()
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while True:
                    if not self._heap:
                        self._wakeup.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        entry = heapq.heappop(self._heap)[2]
                        break
                    self._wakeup.wait(wait)
            entry._fire()


_shared = Timer()


def shared_timer() -> Timer:
    """The process's one timer thread (started on first use)."""
    return _shared
