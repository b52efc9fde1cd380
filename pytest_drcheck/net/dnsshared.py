"""The DNS queries of one host to one nameserver, pipelined over one shared TCP stream.

One TCP connection per query made a drill flood its shared resolver: 7 connections per host,
700 for 100 hosts, where BIND serves 150 TCP clients and dnsmasq 20 at once. DNS over TCP
carries several queries per connection (RFC 7766 6.2.1): queries are sent as they come, each
with a message id unique on its stream, and answers, in whatever order they arrive, go to the
query of their id. No thread of its own: one of the waiting callers reads for all (whoever
finds nobody reading), with a buffer that survives its timeout, so framing is never lost.

When sharing does not work, a query falls back to a stream of its own (what ``ask`` always
did), within what is left of its budget, and never takes an answer meant for another:

- the nameserver closed the stream at a message boundary with queries unanswered (a server
  that closes after some queries, or dnsmasq giving up on a silent upstream): those queries
  are asked again alone, and this host stops sharing with that nameserver;
- a query waited ``PATIENCE`` behind an older unanswered one (a server answering in order,
  stuck on a slow name): it is asked alone, and new queries get a fresh stream;
- the stream failed before the query was sent.

A stream that breaks mid-answer, or with an error, ends its unanswered queries with that
cause (``Broken``): could not observe, never a wrong answer. An idle stream stays open for
``LINGER`` seconds for the host's next query, then is closed (one timer thread for all).
"""

from __future__ import annotations

import contextlib
import random
import struct
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.exception
import dns.message

from pytest_drcheck.targets.base import Stream, Target
from pytest_drcheck.timer import Timer

# How long a query waits behind an older unanswered query on its stream before asking alone.
# Only efficiency depends on it: asking alone too early costs a connection, never a verdict.
PATIENCE = 1.0
# How long an idle shared stream stays open for the host's next query.
LINGER = 2.0
_READ_SIZE = 65536


class FallBack(Exception):
    """Ask this query alone, on a stream of its own (the reason is for debugging)."""


class Broken(Exception):
    """The shared stream failed with this query unanswered; the message is the cause, after
    the nameserver's name ("closed the TCP connection without answering")."""


@dataclass
class _Waiter:
    query: dns.message.Message
    sent_at: float = 0.0
    answer: dns.message.Message | None = None
    failure: Exception | None = None


@dataclass
class SharedStream:
    """One TCP stream to a nameserver carrying many queries."""

    stream: Stream
    on_idle: Callable[[SharedStream], None]
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _send_lock: threading.Lock = field(default_factory=threading.Lock)
    _waiters: dict[int, _Waiter] = field(default_factory=dict)
    _reading: bool = False
    _buffer: bytearray = field(default_factory=bytearray)
    # Set once: FallBack (closed cleanly) or Broken; every unanswered query gets it.
    _ended: Exception | None = None
    # No new queries: one waited too long behind another (see PATIENCE).
    stalled: bool = False
    closed: bool = False
    # When the last query left (monotonic), None while queries are waiting.
    idle_since: float | None = None
    answered: int = 0

    def usable(self) -> bool:
        with self._cond:
            return self._ended is None and not self.stalled and not self.closed

    def idle(self) -> bool:
        with self._cond:
            return not self._waiters

    def ended_cleanly(self) -> bool:
        with self._cond:
            return isinstance(self._ended, FallBack)

    def ask(self, query: dns.message.Message, deadline: float,
            patience: float | None = None) -> dns.message.Message:
        """The answer to ``query``; StreamTimeout at the deadline, FallBack or Broken."""
        patience = PATIENCE if patience is None else patience
        from pytest_drcheck.net.streams import StreamTimeout

        waiter = _Waiter(query)
        with self._cond:
            if self._ended is not None or self.closed:
                raise FallBack("the shared stream ended before the query was sent")
            while query.id in self._waiters:
                query.id = random.randrange(65536)
            self._waiters[query.id] = waiter
            self.idle_since = None
        try:
            self._send(waiter)
            while True:
                with self._cond:
                    until = self._wait_turn(waiter, deadline, patience)
                self._read(until)
        except TimeoutError:
            raise StreamTimeout from None
        except _Answered:
            if waiter.failure is not None:
                raise waiter.failure from None
            assert waiter.answer is not None
            return waiter.answer
        finally:
            self._leave(waiter)

    def _send(self, waiter: _Waiter) -> None:
        wire = waiter.query.to_wire()
        with self._send_lock:
            try:
                self.stream.sendall(struct.pack("!H", len(wire)) + wire)
            except (OSError, EOFError) as exc:
                # Nothing of this query reached the nameserver that could be answered: ask
                # again on a fresh stream. Whoever waits on this one learns it ended.
                self._end(FallBack(f"sending failed: {exc}"))
                raise FallBack(f"sending failed: {exc}") from None
            waiter.sent_at = time.monotonic()

    def _wait_turn(self, waiter: _Waiter, deadline: float, patience: float) -> float:
        """Under the lock: raise _Answered when done, TimeoutError at the deadline, FallBack
        when stuck behind an older query; when this caller is to read for all, the time until
        which it reads (it must look again when its patience runs out)."""
        while True:
            if waiter.answer is not None or waiter.failure is not None:
                raise _Answered
            if self._ended is not None:
                raise self._ended
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError
            patient = now < waiter.sent_at + patience
            if not patient and any(0 < w.sent_at < waiter.sent_at
                                   for w in self._waiters.values()):
                self.stalled = True
                raise FallBack("waited behind an older query")
            until = min(deadline, waiter.sent_at + patience) if patient else deadline
            if not self._reading:
                self._reading = True
                return until
            self._cond.wait(max(0.001, until - now))

    def _read(self, until: float) -> None:
        """One read for every waiter, until ``until`` at most; answers what arrived."""
        try:
            left = until - time.monotonic()
            if left > 0:
                self.stream.settimeout(left)
                try:
                    chunk = self.stream.recv(_READ_SIZE)
                except TimeoutError:
                    return
                except (OSError, EOFError) as exc:
                    self._end(Broken(f"gave no usable answer: {exc}"))
                    return
                if not chunk:
                    # At a message boundary the nameserver closed a stream it no longer
                    # serves; inside a message it broke off an answer.
                    self._end(FallBack("closed by the nameserver") if not self._buffer
                              else Broken("closed the TCP connection without answering"))
                    return
                self._buffer += chunk
                self._dispatch()
        finally:
            with self._cond:
                self._reading = False
                self._cond.notify_all()

    def _dispatch(self) -> None:
        while len(self._buffer) >= 2:
            (length,) = struct.unpack("!H", self._buffer[:2])
            if len(self._buffer) < 2 + length:
                return
            wire = bytes(self._buffer[2:2 + length])
            del self._buffer[:2 + length]
            message_id = struct.unpack("!H", wire[:2])[0] if length >= 2 else None
            with self._cond:
                waiter = self._waiters.get(message_id) if message_id is not None else None
                if waiter is None:
                    continue  # a late answer to a query that gave up: nobody's
                try:
                    response = dns.message.from_wire(wire)
                    if not waiter.query.is_response(response):
                        raise ValueError("the answer is not for the question asked")
                except (ValueError, dns.exception.DNSException) as exc:
                    waiter.failure = Broken(f"gave no usable answer: {exc}")
                else:
                    waiter.answer = response
                    self.answered += 1
                self._cond.notify_all()

    def _end(self, why: Exception) -> None:
        with self._cond:
            if self._ended is None:
                self._ended = why
            self._cond.notify_all()

    def _leave(self, waiter: _Waiter) -> None:
        with self._cond:
            if self._waiters.get(waiter.query.id) is waiter:
                del self._waiters[waiter.query.id]
            if self._waiters:
                return
            self.idle_since = time.monotonic()
        self.on_idle(self)

    def close(self) -> None:
        with self._cond:
            if self.closed:
                return
            self.closed = True
        # Closing an already broken stream: nothing left to release.
        with contextlib.suppress(OSError, EOFError):
            self.stream.close()


class _Answered(Exception):
    """Internal: the waiter has its answer (or its own failure)."""


class StreamPool:
    """The shared stream of one target to one nameserver (opened on demand, by one caller
    while the others wait for it)."""

    def __init__(self, linger: float = LINGER) -> None:
        self._linger = linger
        self._cond = threading.Condition()
        self._current: SharedStream | None = None
        self._opening = False
        # False once the nameserver closed a stream with queries unanswered: alone from then.
        self.sharing = True
        self.opened = 0

    def stream(self, deadline: float, open_stream: Callable[[float], Stream]
               ) -> SharedStream | None:
        """The shared stream (opening it if needed); None when this caller's deadline came
        while another opened it. Raises what opening raises (StreamError...)."""
        with self._cond:
            while True:
                current = self._current
                if current is not None and current.usable():
                    return current
                if not self._opening:
                    self._opening = True
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
        shared: SharedStream | None = None
        try:
            stream = open_stream(max(0.05, deadline - time.monotonic()))
            shared = SharedStream(stream, self._idle)
            return shared
        finally:
            with self._cond:
                self._opening = False
                if shared is not None:
                    self._current = shared
                    self.opened += 1
                self._cond.notify_all()

    def _idle(self, shared: SharedStream) -> None:
        """A stream's last query left: close it now if no new query may use it, else after
        LINGER unless a query came meanwhile."""
        with self._cond:
            if shared.ended_cleanly():
                # Closed by the nameserver with queries unanswered: they are asked alone.
                self.sharing = False
            keep = shared is self._current and shared.usable()
            if not keep and shared is self._current:
                self._current = None
        if not keep:
            shared.close()
            return
        stamp = shared.idle_since
        if stamp is not None:
            _closer.call_later(stamp + self._linger - time.monotonic(),
                               lambda: self._close_if_idle(shared, stamp))

    def _close_if_idle(self, shared: SharedStream, stamp: float) -> None:
        with self._cond:
            if shared.idle_since != stamp or not shared.idle():
                return
            if shared is self._current:
                self._current = None
        shared.close()

    def close(self) -> None:
        with self._cond:
            shared, self._current = self._current, None
        if shared is not None:
            shared.close()


# Lingering streams are closed on a timer of their own, not the shared one: closing a channel
# can wait on its transport, and the shared timer must never wait (it fires every deadline).
_closer = Timer(name="drcheck-dns-linger")
_pools: weakref.WeakKeyDictionary[Target, dict[tuple[str, int], StreamPool]] = (
    weakref.WeakKeyDictionary())
_pools_lock = threading.Lock()


def pool_of(target: Target, server: tuple[str, int]) -> StreamPool:
    """The target's pool for ``server``: one per target and nameserver for the process."""
    with _pools_lock:
        pools = _pools.setdefault(target, {})
        pool = pools.get(server)
        if pool is None:
            pool = pools[server] = StreamPool()
        return pool
