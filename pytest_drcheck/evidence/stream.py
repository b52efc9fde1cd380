"""Streams each result into the bundle the moment it finishes.

``results.jsonl`` gets one line per result and ``observations/<host>.jsonl`` the raw details,
each line written by a single ``write(2)`` on a file opened ``O_APPEND``: nothing sits in a
user-space buffer, so a run killed at any point (SIGKILL included) leaves every finished
result readable, and several pytest-xdist workers can append to the same files.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from pytest_drcheck.evidence.layout import OBSERVATIONS, RESULTS, EvidenceError
from pytest_drcheck.evidence.records import Verdicts, iso
from pytest_drcheck.model import CheckResult


def append_line(fd: int, value: Any) -> None:
    data = (json.dumps(value, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def open_append(path: Path) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise EvidenceError(f"cannot write evidence to {path}: {exc.strerror}") from None


class ResultStream:
    """A result listener for the engine (called from worker threads)."""

    def __init__(self, directory: Path, verdicts: Verdicts) -> None:
        self.directory = directory
        self.verdicts = verdicts
        self.redactor = verdicts.redactor
        self._lock = threading.Lock()
        (directory / OBSERVATIONS).mkdir(parents=True, exist_ok=True)
        self._results = open_append(directory / RESULTS)
        self._observations: dict[str, int] = {}
        self._claim_all = False
        self._claimed: set[str] = set()
        self._pending: dict[str, CheckResult] = {}
        self.written = 0

    def claim_all(self) -> None:
        """This process reports every result its engine produces (no pytest-xdist)."""
        with self._lock:
            self._claim_all = True
            pending, self._pending = list(self._pending.values()), {}
        for result in pending:
            self(result)

    def claim(self, key: str) -> None:
        """pytest-xdist: this worker reports this check. A worker's engine runs every check
        of a host it starts, including checks another worker reports; only the reporting
        worker writes a result, so each check is in the bundle once."""
        if self._claim_all:
            return
        with self._lock:
            self._claimed.add(key)
            result = self._pending.pop(key, None)
        if result is not None:
            self(result)

    def __call__(self, result: CheckResult) -> None:
        if not self.verdicts.knows(result.key) or self._results < 0:
            return  # not an inventory check (cannot happen today; never crash the run)
        with self._lock:
            if not self._claim_all and result.key not in self._claimed:
                self._pending[result.key] = result
                return
        record = self.verdicts.record(result)
        observation = {
            "key": result.key, "check": result.check, "subject": result.subject,
            "outcome": result.outcome.value, "attempts": result.attempts,
            "observed_at": iso(result.started_at), "vantage": result.vantage,
            "details": self.redactor.value(dict(result.details)),
        }
        with self._lock:
            if self._results < 0:
                # Sealed (an interrupted run's checks go on in daemon threads): the bundle's
                # files must not change after its manifest is written.
                return
            append_line(self._results, record)
            fd = self._observations.get(result.host)
            if fd is None:
                fd = open_append(self.directory / OBSERVATIONS / f"{result.host}.jsonl")
                self._observations[result.host] = fd
            append_line(fd, observation)
            self.written += 1

    def close(self) -> None:
        with self._lock:
            for fd in [self._results, *self._observations.values()]:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._observations.clear()
            self._results = -1
