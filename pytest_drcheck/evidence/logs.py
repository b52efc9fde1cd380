"""Log records of libraries (paramiko, pytest-drcheck's own layers) go to their host's
evidence, not into pytest's test reports.

Checks run in background threads; pytest's log capture attaches whatever is logged while a
test runs to *that* test, so a paramiko traceback about one host's banner used to land in
another host's failure. While a drill runs, a router on the library loggers writes their
background records, redacted, to ``logs/<host>.jsonl`` in the bundle (``logs/runner.jsonl``
when no host can be told), and a filter keeps the same records out of pytest's report
capture (pytest attaches its handlers to non-propagating loggers too, so propagation cannot
be used to hide them). A record logged on pytest's main thread belongs to the test running
there and stays in its report.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from pytest_drcheck.evidence.layout import LOGS
from pytest_drcheck.evidence.redact import Redactor
from pytest_drcheck.evidence.stream import append_line, open_append

LIBRARY_LOGGERS = ("paramiko", "pytest_drcheck")
# The targets give each host's SSH transport its own channel: pytest_drcheck.ssh.<host>.
HOST_CHANNEL = "pytest_drcheck.ssh."
# The SSH targets' per-host transport logs (targets/ssh/channels.py names them).
SSH_TRANSPORTS = HOST_CHANNEL.rstrip(".")
# The engine names a check's thread check-<host>::<check>[<subject>].
CHECK_THREAD = "check-"
RUNNER = "runner"


def host_of(record: logging.LogRecord) -> str | None:
    if record.name.startswith(HOST_CHANNEL):
        return record.name[len(HOST_CHANNEL):].split(".", 1)[0] or None
    thread = record.threadName or ""
    if thread.startswith(CHECK_THREAD) and "::" in thread:
        return thread[len(CHECK_THREAD):].split("::", 1)[0] or None
    return None


class LogSink:
    """``logs/<host>.jsonl`` of one bundle: one ``write(2)`` per record (several pytest-xdist
    workers append to the same files), closed when the bundle is sealed."""

    def __init__(self, directory: Path, redactor: Redactor) -> None:
        self.directory = directory / LOGS
        self.redactor = redactor
        self._lock = threading.Lock()
        self._files: dict[str, int] = {}
        self._closed = False

    def write(self, host: str, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        line = {
            "at": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "thread": record.threadName,
            "message": self.redactor.text(message),
        }
        with self._lock:
            if self._closed:
                return False
            fd = self._files.get(host)
            if fd is None:
                self.directory.mkdir(exist_ok=True)
                fd = self._files[host] = open_append(self.directory / f"{host}.jsonl")
            append_line(fd, line)
        return True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for fd in self._files.values():
                os.close(fd)
            self._files.clear()


def is_background_library_record(record: logging.LogRecord, main_thread: int | None) -> bool:
    return record.thread != main_thread and record.name.split(".", 1)[0] in LIBRARY_LOGGERS


class KeepOutOfReports(logging.Filter):
    """On pytest's capture handlers: drops library records logged by background threads."""

    def __init__(self) -> None:
        super().__init__()
        self._main = threading.main_thread().ident

    def filter(self, record: logging.LogRecord) -> bool:
        return not is_background_library_record(record, self._main)


class LibraryLogRouter(logging.Handler):
    """Installed on the library loggers for the duration of a drill (``install``/``remove``)."""

    def __init__(self, sink: LogSink | None) -> None:
        super().__init__(logging.NOTSET)
        self.sink = sink
        # Records of each host that no bundle keeps (no --dr-evidence, or after sealing).
        self.unkept: Counter[str] = Counter()
        self._main = threading.main_thread().ident
        self._installed: list[logging.Logger] = []
        self._transports_were: tuple[int, bool] | None = None

    def install(self) -> None:
        for name in LIBRARY_LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(self)
            self._installed.append(logger)
        # Each SSH transport's own log (pytest_drcheck.ssh.<host>, at INFO and DEBUG: the
        # target already reports each failure as one line) belongs to its host's log in the
        # bundle, whole, and to nobody's test report. Without a bundle nothing keeps the
        # DEBUG chatter (some 50 records per host, 5% of a 100-host drill's CPU when made and
        # thrown away), so the level is left as the user set it.
        transports = logging.getLogger(SSH_TRANSPORTS)
        self._transports_were = (transports.level, transports.propagate)
        if self.sink is not None:
            transports.setLevel(logging.DEBUG)
        transports.propagate = False
        transports.addHandler(self)
        self._installed.append(transports)
        # paramiko's threads can log after the drill (a transport closed at exit): with no
        # handler anywhere, logging's last resort would print it on stderr as a traceback.
        paramiko = logging.getLogger("paramiko")
        if not any(isinstance(h, logging.NullHandler) for h in paramiko.handlers):
            paramiko.addHandler(logging.NullHandler())

    def remove(self) -> None:
        for logger in self._installed:
            logger.removeHandler(self)
        self._installed.clear()
        if self._transports_were is not None:
            transports = logging.getLogger(SSH_TRANSPORTS)
            transports.level, transports.propagate = self._transports_were
            self._transports_were = None

    def emit(self, record: logging.LogRecord) -> None:
        if not is_background_library_record(record, self._main):
            return  # the running test's own record: its report shows it
        host = host_of(record) or RUNNER
        try:
            kept = self.sink is not None and self.sink.write(host, record)
        except OSError:
            kept = False
        if not kept:
            self.unkept[host] += 1
