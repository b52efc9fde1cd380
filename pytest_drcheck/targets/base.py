"""The contract every target (ssh, local, later ssm/winrm) fulfils."""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from typing import Protocol

from pytest_drcheck.targets.batch import run_batch
from pytest_drcheck.targets.names import (
    NameCache,
    NameNotResolved,
    is_address,
    lookup_command,
    parse_getent,
)
from pytest_drcheck.targets.result import CommandResult

__all__ = ["CommandResult", "NameNotResolved", "Stream", "StreamError", "Target", "TargetError"]


_NAMES_LOCK = threading.Lock()


class TargetError(Exception):
    """The host cannot be used; the message is one line meant for the user.

    Examples: ``connection refused``, ``timed out after 5 s``, ``host key mismatch``.
    """


class StreamError(Exception):
    """A TCP stream could not be opened from the host.

    ``outcome`` is one of ``refused``, ``timed out``, ``unreachable``, ``error`` so that callers
    can tell the three network outcomes apart without parsing text.
    """

    def __init__(self, outcome: str, message: str,
                 opened_late: Callable[[], bool] | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        # For a "timed out" open: asked later, whether the host's end made the connection
        # after all, after the timeout (an SSH channel the instance's sshd confirmed late).
        self.opened_late = opened_late


class Stream(Protocol):
    """The part of a socket that protocol code over a tunnel needs (socket and paramiko Channel)."""

    def sendall(self, data: bytes) -> None: ...
    def recv(self, size: int) -> bytes: ...
    def settimeout(self, timeout: float | None) -> None: ...
    def close(self) -> None: ...


class Target(abc.ABC):
    """One host's connection: opened lazily, shared by every check of the host, closed once."""

    # The program that answers `getent ahosts NAME` on the host (resolve() runs it there).
    getent = "getent"
    # linux or windows: which shell the host's commands and batches are written for (the
    # factory sets it from the inventory's ``platform:``).
    platform = "linux"
    # A name lookup is a command on the host: it gets the host's command budget (the factory
    # sets the connection's command_timeout), never less, whatever a caller's stream budget is.
    # Measured at 100 hosts on 2 cores: starting the lookup session took seconds, and the
    # 3 s connect budget of an ldap stream turned working names into "does not resolve".
    lookup_timeout = 10.0

    def __init__(self, name: str) -> None:
        self.name = name
        self._names = NameCache(name)

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
        if self.platform == "windows":
            from pytest_drcheck.targets import powershell_batch

            return powershell_batch.run_batch(self.run, self.name, commands, timeout)
        return run_batch(self, commands, timeout)

    @abc.abstractmethod
    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        """Open a TCP connection made *by the host* to host:port; raise StreamError.

        A name is resolved on the host first (``resolve``), never by the stream layer, and
        NameNotResolved (a CouldNotObserve) says so when it does not resolve.
        """

    def resolve(self, name: str, timeout: float) -> tuple[str, ...]:
        """The addresses ``name`` has on the host, as its own resolver answers (/etc/hosts, DNS).

        Looked up once per name for the life of the target, in a command of its own so that a
        slow resolver delays only the callers that need this name; concurrent callers share
        the lookup. The lookup's budget is ``timeout`` or the host's ``lookup_timeout``,
        whichever is longer. Raises NameNotResolved (a CouldNotObserve) naming the name, the
        host and why, or TargetError when the host cannot be used. An address is returned as
        it is.
        """
        if is_address(name):
            return (name.strip("[]"),)
        holder = self.unwrap()
        if holder is not self:
            return holder.resolve(name, timeout)
        return self._name_cache().resolve(name, max(timeout, self.lookup_timeout),
                                          self._look_up)

    def remember_addresses(self, name: str, addresses: tuple[str, ...]) -> None:
        """Seed ``resolve`` with an answer learnt elsewhere (e.g. the host's batched commands)."""
        holder = self.unwrap()
        if holder is not self:
            holder.remember_addresses(name, addresses)
            return
        self._name_cache().remember(name, addresses)

    def _look_up(self, name: str, timeout: float) -> tuple[str, ...]:
        if self.platform == "windows":
            from pytest_drcheck.targets import powershell_batch

            (result,) = self.run_batch([powershell_batch.lookup_command(name)], timeout)
            return powershell_batch.parse_lookup(name, self.name, result, timeout)
        result = self.run(lookup_command(self.getent, name), timeout)
        return parse_getent(name, self.name, result, timeout)

    def _name_cache(self) -> NameCache:
        # Subclasses written before resolve() existed may not call Target.__init__.
        cache: NameCache | None = self.__dict__.get("_names")
        if cache is None:
            with _NAMES_LOCK:
                cache = self.__dict__.setdefault("_names", NameCache(self.name))
        return cache

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

    def connection_lost(self, grace: float) -> str | None:
        """Why this target's connection to the host is gone (one line), or None while it works
        or for targets without one. A protocol error seen through the connection asks this
        first: a tunnel torn down with its connection looks to the client like the server
        hanging up. ``grace``: how long to let the connection's own teardown finish."""
        return None
