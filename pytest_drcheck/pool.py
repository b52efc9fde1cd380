"""Reused threads that run calls under deadlines enforced by the one timer thread.

A call that passes its deadline fails its future with ``DeadlineExceeded`` at once; the thread
still stuck in it is abandoned (Python cannot stop it) and a replacement is started, so the
pool never shrinks; whatever the abandoned call returns later is discarded, never delivered.
The deadline starts when a thread takes the call, not when it is queued: waiting for a free
thread is the drill's own load, never the host's fault.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

from pytest_drcheck.timer import DeadlineExceeded, Scheduled, Timer, shared_timer

T = TypeVar("T")


class _Call(Generic[T]):
    __slots__ = ("alarm", "expired", "finished", "function", "future", "name", "seconds")

    def __init__(self, function: Callable[[], T], seconds: float | None, name: str) -> None:
        self.function = function
        self.seconds = seconds
        self.name = name
        self.future: Future[T] = Future()
        self.alarm: Scheduled | None = None
        self.expired = False
        self.finished = False


class DeadlinePool:
    """``size`` threads at most (started as calls need them); ``elastic`` pools start a
    thread whenever none is free, so a call never queues, and keep ``size`` idle ones."""

    def __init__(self, size: int, name: str, *, elastic: bool = False,
                 timer: Timer | None = None) -> None:
        self.size = max(1, size)
        self._name = name
        self._elastic = elastic
        self._timer = timer or shared_timer()
        self._queue: queue.SimpleQueue[_Call[object] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._live = 0  # threads serving the queue (abandoned ones no longer count)
        self._idle = 0
        self._queued = 0
        self._closed = False
        self._numbers = itertools.count()
        # Threads ever started and calls abandoned at their deadline (for tests and reports).
        self.started = 0
        self.abandoned = 0

    def submit(self, function: Callable[[], T], seconds: float | None = None,
               name: str = "") -> Future[T]:
        call = _Call(function, seconds, name)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self._name} pool is closed")
            self._queued += 1
            self._grow()
        self._queue.put(call)  # type: ignore[arg-type]
        return call.future

    def close(self) -> None:
        """Idle threads leave; busy ones leave after their call."""
        with self._lock:
            self._closed = True
            live = self._live
        for _ in range(live):
            self._queue.put(None)

    def _grow(self) -> None:
        # Called with the lock held: a thread for a call no idle thread will take.
        if self._queued > self._idle and (self._elastic or self._live < self.size):
            self._live += 1
            self.started += 1
            threading.Thread(target=self._serve, daemon=True,
                             name=f"{self._name}-{next(self._numbers)}").start()

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            call = self._queue.get()
            with self._lock:
                self._idle -= 1
                if call is None:
                    self._live -= 1
                    return
                self._queued -= 1
            if not self._run(call):
                return  # abandoned at its deadline: a replacement serves the queue
            with self._lock:
                if self._elastic and self._live > self.size and self._queued <= self._idle:
                    self._live -= 1
                    return

    def _run(self, call: _Call[T]) -> bool:
        """Runs the call; False when it outlived its deadline (this thread was replaced)."""
        if not call.future.set_running_or_notify_cancel():
            return True
        if call.seconds is not None:
            call.alarm = self._timer.call_later(call.seconds, lambda: self._expire(call))
        thread = threading.current_thread()
        idle_name = thread.name
        if call.name:
            thread.name = call.name
        value: T | None = None
        error: BaseException | None = None
        try:
            value = call.function()
        except BaseException as exc:  # delivered to whoever waits for the future
            error = exc
        with self._lock:
            if call.expired:
                return False
            call.finished = True
        thread.name = idle_name
        if call.alarm is not None:
            call.alarm.cancel()
        if error is not None:
            call.future.set_exception(error)
        else:
            call.future.set_result(value)  # type: ignore[arg-type]
        return True

    def _expire(self, call: _Call[T]) -> None:
        # On the timer thread: fail the future at once, replace the stuck thread.
        with self._lock:
            if call.finished or call.expired:
                return
            call.expired = True
            self._live -= 1
            self.abandoned += 1
            if not self._closed:
                self._grow()
        call.future.set_exception(DeadlineExceeded(f"no answer within {call.seconds:g} s"))
