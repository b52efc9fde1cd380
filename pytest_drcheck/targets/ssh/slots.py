"""Session slots: how many commands run at once over one connection, handed out in turn."""

from __future__ import annotations

import threading
import time
from collections import deque


class SessionSlots:
    """At most ``size`` sessions at once, granted in arrival order.

    First come, first served matters: with a plain semaphore a thread that releases a slot and
    asks again at once (a check running short commands in a loop) takes it back before a woken
    waiter runs, and under load a waiter starved for its whole timeout (``no free SSH session``
    in a burst of ``true`` commands: 10 s waits while the median command took 0.7 s).

    A waiter gives up only when the queue stops moving: ``patience`` counts from the later of
    its arrival and the last slot handed over, so a long queue of short commands is waited out
    (it is making progress at the pace the host sets) while a stuck one is not.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._free = size
        self._waiting: deque[object] = deque()
        self._moved = time.monotonic()
        self._changed = threading.Condition(threading.Lock())

    def acquire(self, patience: float, until: float | None = None) -> bool:
        """A slot, in turn; False when the queue stood still for ``patience`` seconds or,
        given ``until`` (a monotonic time), when that time came whatever the queue did."""
        ticket = object()
        arrived = time.monotonic()
        with self._changed:
            self._waiting.append(ticket)
            try:
                while not (self._free > 0 and self._waiting[0] is ticket):
                    left = max(arrived, self._moved) + patience - time.monotonic()
                    if until is not None:
                        left = min(left, until - time.monotonic())
                    if left <= 0:
                        return False
                    self._changed.wait(left)
                self._waiting.popleft()
                self._free -= 1
                self._moved = time.monotonic()
                return True
            finally:
                if ticket in self._waiting:  # gave up: let the next one have its turn
                    self._waiting.remove(ticket)
                self._changed.notify_all()

    def release(self) -> None:
        with self._changed:
            if self._free >= self._size:
                raise ValueError("session slot released more often than acquired")
            self._free += 1
            self._moved = time.monotonic()
            self._changed.notify_all()

    def in_use(self) -> int:
        """How many slots are taken now."""
        with self._changed:
            return self._size - self._free

    def waiting(self) -> int:
        """How many callers wait for a slot now."""
        with self._changed:
            return len(self._waiting)
