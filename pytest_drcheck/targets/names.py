"""Names resolved on the host, once per name per target, where a slow lookup stalls nothing.

sshd resolves a ``direct-tcpip`` destination *name* synchronously in the connection's process:
while that lookup hangs, every other channel of the connection stalls (LAB-NOTES), so unrelated
checks of the host fail with false reasons. Targets therefore never hand a name to the stream
layer: the name is looked up with ``getent ahosts`` in a command of its own (its own process on
the host, under the host's `timeout`), and the stream is opened to the address.

Answers are kept for the life of the target; callers that ask while a lookup is in flight share
it. A failed lookup is shared by those callers but not kept: a later check (a retry under
--dr-wait, a record that was fixed during the drill) looks again.
"""

from __future__ import annotations

import ipaddress
import shlex
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from pytest_drcheck.durations import format_duration
from pytest_drcheck.model import CouldNotObserve
from pytest_drcheck.targets.result import CommandResult

# getent: 2 is "one or more keys could not be found"; glibc returns it both for NXDOMAIN and
# when the resolver failed or did not answer, so the message cannot tell those apart.
_GETENT_NO_ANSWER = 2
_NOT_FOUND_STATUS = 127


class NameNotResolved(CouldNotObserve):
    """A name could not be resolved on the host; the message says where and why, in one line."""

    def __init__(self, name: str, host: str, why: str) -> None:
        super().__init__(f"{name} does not resolve on {host} ({why})")
        self.name = name
        self.host = host
        self.why = why


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def lookup_command(getent: str, name: str) -> str:
    return f"{shlex.quote(getent)} ahosts {shlex.quote(name)}"


def parse_getent(name: str, host: str, result: CommandResult, timeout: float
                 ) -> tuple[str, ...]:
    """The addresses ``getent ahosts`` printed, in the resolver's order; else NameNotResolved."""
    if result.timed_out:
        raise NameNotResolved(name, host, f"the lookup timed out after "
                                          f"{format_duration(timeout)}")
    if result.exit_status == _NOT_FOUND_STATUS:
        raise NameNotResolved(name, host, "getent is not installed there, exit 127")
    if result.exit_status == _GETENT_NO_ANSWER:
        raise NameNotResolved(name, host, "getent: no answer; the name does not exist or the "
                                          "resolver failed")
    if result.exit_status != 0:
        detail = " ".join(result.stderr.split()) or "no message"
        raise NameNotResolved(name, host, f"getent exit {result.exit_status}: {detail}")
    addresses: list[str] = []
    for line in result.stdout.splitlines():
        fields = line.split()
        if fields and is_address(fields[0]) and fields[0] not in addresses:
            addresses.append(fields[0])
    if not addresses:
        raise NameNotResolved(name, host, "getent printed no address")
    return tuple(addresses)


Lookup = Callable[[str, float], tuple[str, ...]]


class NameCache:
    """Addresses per name for one target: one lookup per name, shared by concurrent callers."""

    def __init__(self, host: str) -> None:
        self._host = host
        self._lock = threading.Lock()
        self._known: dict[str, tuple[str, ...]] = {}
        self._pending: dict[str, Future[tuple[str, ...]]] = {}

    def remember(self, name: str, addresses: tuple[str, ...]) -> None:
        """Seed an answer learnt elsewhere (e.g. from the host's batch), so nobody looks again."""
        if not addresses:
            raise ValueError(f"no address given for {name}")
        with self._lock:
            self._known[name] = tuple(addresses)

    def resolve(self, name: str, timeout: float, lookup: Lookup) -> tuple[str, ...]:
        with self._lock:
            known = self._known.get(name)
            if known is not None:
                return known
            pending = self._pending.get(name)
            owner = pending is None
            if pending is None:
                pending = self._pending[name] = Future()
        if not owner:
            try:
                return pending.result(timeout=timeout)
            except FutureTimeout:
                raise NameNotResolved(name, self._host, f"the lookup timed out after "
                                                        f"{format_duration(timeout)}") from None
        try:
            addresses = lookup(name, timeout)
        except BaseException as exc:
            with self._lock:
                del self._pending[name]
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._pending[name]
            self._known[name] = addresses
        pending.set_result(addresses)
        return addresses
