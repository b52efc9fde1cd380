"""A machine-wide lock so that several developers' runs do not rebuild the lab under each other."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pytest_drcheck.lab.errors import LabError
from pytest_drcheck.lab.paths import LOCK_PATH

DEFAULT_WAIT = 120.0


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return f" by pid {text}"
    return ""


@contextlib.contextmanager
def lab_lock(timeout: float = DEFAULT_WAIT, path: Path = LOCK_PATH,
             on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; poll for at most ``timeout`` seconds.

    Polling (instead of a blocking flock) is what gives the wait a deadline. The lock file is
    never deleted: unlinking a lock file lets two processes lock two different inodes.
    The holder's PID is written into the file only to make the waiting message useful.
    ``on_wait`` is called once, with a short message, if the lock is not free right away.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LabError(f"the lab is locked{_holder(fd)} ({path}); gave up after "
                                   f"{timeout:.0f} s: wait for that run to finish") from None
                if not told and on_wait is not None:
                    on_wait(f"waiting for the lab lock held{_holder(fd)} (up to {timeout:.0f} s)")
                    told = True
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
