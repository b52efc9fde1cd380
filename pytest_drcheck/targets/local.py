"""Local target: the runner itself, for checks whose vantage is the machine running pytest."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess

from pytest_drcheck.durations import format_duration
from pytest_drcheck.targets.base import Stream, StreamError, Target
from pytest_drcheck.targets.dial import open_resolved
from pytest_drcheck.targets.result import TIMEOUT_STATUS, CommandResult

# After the process group is killed, how long to wait for pipes a detached grandchild may hold.
_DRAIN_SECONDS = 1.0
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH}


class LocalTarget(Target):
    def __init__(self, name: str) -> None:
        super().__init__(name)

    @property
    def vantage(self) -> str:
        return f"{self.name} (local {socket.gethostname()})"

    def connect(self) -> None:
        """Nothing to open: the runner is always reachable from itself."""

    def run(self, command: str, timeout: float) -> CommandResult:
        return self._run(command, timeout).on(self.name, timeout)

    def _run(self, command: str, timeout: float) -> CommandResult:
        # A session of its own, so that a timeout kills everything the command started, not
        # only the shell.
        process = subprocess.Popen(
            ["sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return _stop(process, command)
        return CommandResult(command, process.returncode, _text(out), _text(err))

    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        # A name is resolved by a getent of its own, as on every target: the same messages,
        # and a lookup that hangs holds only its own process.
        return open_resolved(self, host, port, timeout,
                             lambda address, left, where: _connect(address, port, left, where))

    def open_process(self, command: str, timeout: float) -> Stream:
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(["sh", "-c", command], stdin=theirs.fileno(),
                                       stdout=theirs.fileno(),
                                       stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            ours.close()
            raise StreamError("error", f"cannot start sh on {self.name}: {exc}") from None
        finally:
            theirs.close()
        return _ProcessStream(ours, process)

    def close(self) -> None:
        """Nothing to release: every command and stream is closed when it is done."""


def _connect(host: str, port: int, timeout: float, where: str) -> Stream:
    """A socket connected to an address (never a name: open_resolved resolved it)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise StreamError("timed out", f"{where}: timed out after {format_duration(timeout)}"
                          ) from None
    except ConnectionRefusedError:
        raise StreamError("refused", f"{where}: connection refused") from None
    except OSError as exc:
        outcome = "unreachable" if exc.errno in _UNREACHABLE else "error"
        raise StreamError(outcome, f"{where}: {exc.strerror or exc}") from None
    # Like a fresh SSH channel: blocking until the caller sets its own timeout.
    sock.settimeout(None)
    return sock


class _ProcessStream:
    """A local process's stdin/stdout (one socket of a pair); closing it ends the process."""

    def __init__(self, sock: socket.socket, process: subprocess.Popen[bytes]) -> None:
        self._sock = sock
        self._process = process

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def recv(self, size: int) -> bytes:
        return self._sock.recv(size)

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def close(self) -> None:
        self._sock.close()  # end of input: the process ends by itself
        try:
            self._process.wait(timeout=_DRAIN_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()


def _stop(process: subprocess.Popen[bytes], command: str) -> CommandResult:
    # ProcessLookupError: it ended between the timeout and the kill.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        out, err = process.communicate(timeout=_DRAIN_SECONDS)
    except subprocess.TimeoutExpired:
        # A grandchild that left the process group still holds the pipes: give up on them.
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        process.wait()
        out, err = b"", b""
    return CommandResult(command, TIMEOUT_STATUS, _text(out), _text(err), timed_out=True)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
