"""Handles of the long-lived processes this Python process started, so that it reaps them.

A process that outlives its Popen handle becomes a zombie when it exits until someone waits
for it; the ``drcheck`` CLI exits right after ``up`` (its children are then adopted and reaped
by PID 1), but a pytest session keeps running and must reap the daemons it restarts.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterable


class Spawner:
    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def add(self, child: subprocess.Popen[bytes]) -> None:
        self._children[child.pid] = child

    def reap(self, pids: Iterable[int], timeout: float = 2.0) -> None:
        """Wait (at most ``timeout`` in all) for those of ``pids`` that are our children and
        are exiting; forget every child that has exited."""
        deadline = time.monotonic() + timeout
        for pid in pids:
            child = self._children.get(pid)
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=max(0.0, deadline - time.monotonic()))
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]
