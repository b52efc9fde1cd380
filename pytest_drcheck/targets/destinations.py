"""A cap on the streams open at once to one destination (address:port), across all hosts.

A drill's hosts share a few destinations: the on-premises resolver, the domain controller,
the log collector. Unbounded, 100 hosts checking at once open hundreds of connections to the
same resolver (BIND serves 150 TCP clients by default, dnsmasq 20 at a time) and the
destination's refusals and timeouts become false failures of every host. Each stream a target
opens to an address holds one of that destination's slots until it is closed; slots are
handed out in arrival order (SessionSlots), and a wait is bounded by the stream's own
timeout. When the wait is what ran out, the error says so ("waited 10 s for a stream to
10.77.0.53:53: 64 in use"): a could-not-observe naming the runner's own limit, never a port
that timed out (a reach check must not read it as "filtered").
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pytest_drcheck.durations import format_duration
from pytest_drcheck.model import CouldNotObserve
from pytest_drcheck.targets.base import Stream, StreamError

if TYPE_CHECKING:
    from pytest_drcheck.targets.ssh.slots import SessionSlots

DEFAULT_STREAMS_PER_DESTINATION = 64
# What sets the cap, for messages.
SETTING = "--dr-streams-per-destination"


class StreamWaitTimedOut(CouldNotObserve):
    """No stream to the destination could be had within the timeout: the cap's slots were all
    in use for the whole wait."""


class DestinationCap:
    """At most ``limit`` open streams per (address, port), process-wide."""

    def __init__(self, limit: int = DEFAULT_STREAMS_PER_DESTINATION) -> None:
        if limit < 1:
            raise ValueError(f"the streams per destination must be at least 1, got {limit}")
        self.limit = limit
        self._lock = threading.Lock()
        self._slots: dict[tuple[str, int], SessionSlots] = {}

    def slots(self, address: str, port: int) -> SessionSlots:
        # Imported here: the ssh package imports the dialler, which imports this module.
        from pytest_drcheck.targets.ssh.slots import SessionSlots

        with self._lock:
            slots = self._slots.get((address, port))
            if slots is None:
                slots = self._slots[(address, port)] = SessionSlots(self.limit)
            return slots

    def open(self, address: str, port: int, timeout: float,
             open_stream: Callable[[float], Stream]) -> Stream:
        """``open_stream(seconds left)`` once a slot is free; the stream returned gives the
        slot back when it is closed. The wait and the open share ``timeout``."""
        slots = self.slots(address, port)
        started = time.monotonic()
        waited = 0.0
        # A free slot is taken at once, and the open then has the whole timeout (its messages
        # say "timed out after 1 s", not "after 999 ms").
        if not slots.acquire(0.0, until=started):
            if not slots.acquire(timeout, until=started + timeout):
                raise StreamWaitTimedOut(
                    f"waited {format_duration(time.monotonic() - started)} for a stream to "
                    f"{address}:{port}: {self.limit} in use ({SETTING})")
            waited = time.monotonic() - started
        try:
            stream = open_stream(timeout if not waited else max(0.05, timeout - waited))
        except StreamError as exc:
            slots.release()
            # A connection given only what the wait left of the timeout did not time out in
            # the destination's own time: never let that read as a filtered port.
            if exc.outcome == "timed out" and waited >= 0.05 * timeout:
                raise StreamWaitTimedOut(
                    f"{exc}, after waiting {format_duration(waited)} of the "
                    f"{format_duration(timeout)} for a stream to {address}:{port} "
                    f"({self.limit} in use, {SETTING})") from None
            raise
        except BaseException:
            slots.release()
            raise
        return _held(stream, slots.release)


def _held(stream: Stream, release: Callable[[], None]) -> Stream:
    if isinstance(stream, socket.socket):
        # Still a socket (the forwarder shuts sockets down half-way, channels its own way).
        held = _HeldSocket(stream.family, stream.type, stream.proto, fileno=stream.detach())
        held.settimeout(None)
        held.drc_release = _Once(release)
        return held
    return _HeldStream(stream, _Once(release))


class _Once:
    def __init__(self, action: Callable[[], None]) -> None:
        self._action: Callable[[], None] | None = action
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            action, self._action = self._action, None
        if action is not None:
            action()


class _HeldSocket(socket.socket):
    drc_release: _Once | None = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.drc_release is not None:
                self.drc_release()


class _HeldStream:
    """A stream (a paramiko Channel) that gives its destination slot back when closed; every
    other attribute is the stream's own."""

    def __init__(self, stream: Stream, release: _Once) -> None:
        self._drc_stream = stream
        self._drc_release = release

    def sendall(self, data: bytes) -> None:
        self._drc_stream.sendall(data)

    def recv(self, size: int) -> bytes:
        return self._drc_stream.recv(size)

    def settimeout(self, timeout: float | None) -> None:
        self._drc_stream.settimeout(timeout)

    def close(self) -> None:
        try:
            self._drc_stream.close()
        finally:
            self._drc_release()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._drc_stream, name)


_cap = DestinationCap()
_cap_lock = threading.Lock()


def configure(limit: int) -> None:
    """Set the process-wide cap (the run's setting); streams already open keep their slots
    in the cap they came from."""
    global _cap
    with _cap_lock:
        if _cap.limit != limit:
            _cap = DestinationCap(limit)


def cap() -> DestinationCap:
    with _cap_lock:
        return _cap
