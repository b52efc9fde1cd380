"""The contract every target (ssh, local, later ssm/winrm) fulfils."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Protocol


class TargetError(Exception):
    """The host cannot be used; the message is one line meant for the user.

    Examples: ``connection refused``, ``timed out after 5 s``, ``host key mismatch``.
    """


class StreamError(Exception):
    """A TCP stream could not be opened from the host.

    ``outcome`` is one of ``refused``, ``timed out``, ``unreachable``, ``error`` so that callers
    can tell the three network outcomes apart without parsing text.
    """

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str
    # True when our per-command timeout killed it; exit_status is then 124.
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out


class Stream(Protocol):
    """The part of a socket that protocol code over a tunnel needs (socket and paramiko Channel)."""

    def sendall(self, data: bytes) -> None: ...
    def recv(self, size: int) -> bytes: ...
    def settimeout(self, timeout: float | None) -> None: ...
    def close(self) -> None: ...


class Target(abc.ABC):
    """One host's connection: opened lazily, shared by every check of the host, closed once."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    @abc.abstractmethod
    def vantage(self) -> str:
        """Where observations come from, e.g. ``app01 (ssh root@10.77.0.11:22)``."""

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the connection if it is not open; raise TargetError with the reason."""

    @abc.abstractmethod
    def run(self, command: str, timeout: float) -> CommandResult:
        """Run one shell command on the host; the timeout is enforced on the host and here."""

    def run_batch(self, commands: list[str], timeout: float) -> list[CommandResult]:
        """Run several commands in as few round trips as the target allows (one, for shells)."""
        from pytest_drcheck.targets.batch import run_batch

        return run_batch(self, commands, timeout)

    @abc.abstractmethod
    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        """Open a TCP connection made *by the host* to host:port; raise StreamError."""

    def open_process(self, command: str, timeout: float) -> Stream:
        """Start a shell command on the host whose stdin and stdout are the returned stream
        (stderr is discarded), for many small exchanges over one channel: a clock sampled
        with one newline per sample costs a channel round trip instead of a new session
        each. The command must end at end of input (the stream's close). Raises StreamError
        when it cannot be started in time; NotImplementedError for targets that only run
        whole commands (SSM)."""
        raise NotImplementedError(f"{type(self).__name__} cannot keep a process open")

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection; safe to call more than once."""

    def unwrap(self) -> Target:
        """The target that really holds the connection (a wrapper, such as a host found in AWS
        first, returns the target it connected); itself for ordinary targets."""
        return self
