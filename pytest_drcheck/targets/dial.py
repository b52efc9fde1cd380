"""Opening a stream to host:port where host may be a name: resolved on the host, then dialled."""

from __future__ import annotations

from collections.abc import Callable

from pytest_drcheck.targets import destinations
from pytest_drcheck.targets.base import Stream, StreamError, Target
from pytest_drcheck.targets.names import is_address

# Opens a stream to (address, port) within a timeout; ``where`` starts its error messages.
OpenAddress = Callable[[str, float, str], Stream]


def open_resolved(target: Target, host: str, port: int, timeout: float,
                  open_address: OpenAddress) -> Stream:
    """A stream to host:port made by ``target``; a name is resolved on the target first.

    The lookup has its own budget (a command's on the host: Target.resolve), and the
    connection then has all of ``timeout``: a slow lookup is the resolver's delay, never a
    port that timed out. The addresses are tried in the resolver's order while they are
    refused or unreachable (as ssh, and sshd given the name, would), never after a timeout:
    waiting again would only multiply the time. parse_getent never returns an empty tuple, so
    there is always a failure to raise.

    Each stream holds one of its destination's slots (targets.destinations) while open: the
    wait for a slot is part of ``timeout``, and says so when it is what ran out.
    """
    if is_address(host):
        address = host.strip("[]")
        return _capped(address, port, timeout, open_address, f"{host}:{port} from {target.name}")
    addresses = target.resolve(host, timeout)
    failures: list[StreamError] = []
    for address in addresses:
        where = f"{host}:{port} ({address}) from {target.name}"
        try:
            return _capped(address, port, timeout, open_address, where)
        except StreamError as exc:
            if exc.outcome == "timed out":
                raise
            failures.append(exc)
    # A refusal is the destination's own answer: the most telling of several failures.
    raise next((f for f in failures if f.outcome == "refused"), failures[0])


def _capped(address: str, port: int, timeout: float, open_address: OpenAddress,
            where: str) -> Stream:
    return destinations.cap().open(address, port, timeout,
                                   lambda left: open_address(address, left, where))
