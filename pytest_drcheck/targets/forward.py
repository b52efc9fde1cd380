"""A loopback port that relays to host:port from a target's network position.

For client libraries that insist on opening their own socket (ldap3, HTTP clients): point them at
the yielded ("127.0.0.1", port) and each connection they make is carried by
``target.open_stream``, i.e. made by the target host.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from pytest_drcheck.model import CouldNotObserve
from pytest_drcheck.targets.base import Stream, StreamError, Target, TargetError

log = logging.getLogger(__name__)
_CHUNK = 65536
# How often the accept loop looks at the stop flag; accepting itself is immediate.
_ACCEPT_POLL_SECONDS = 0.2
# How long closing a stream waits for a send in progress on it (see _Relay._send_locks).
_SEND_GRACE_SECONDS = 2.0


@contextlib.contextmanager
def local_forward(target: Target, host: str, port: int, timeout: float
                  ) -> Iterator[tuple[str, int]]:
    """Yield the address of an ephemeral 127.0.0.1 listener relaying to host:port via target.

    ``timeout`` bounds opening each relayed stream. A stream that cannot be opened closes the
    accepted connection (the client sees EOF) and is logged with the StreamError's message.
    A name is resolved on the target here, in the caller's thread, so that NameNotResolved (a
    CouldNotObserve) reaches the check instead of dying in a relay thread.
    """
    target.resolve(host, timeout)
    relay = _Relay(target, host, port, timeout)
    try:
        yield relay.address
    finally:
        relay.close()


class _Relay:
    def __init__(self, target: Target, host: str, port: int, timeout: float) -> None:
        self._target, self._host, self._port, self._timeout = target, host, port, timeout
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_ACCEPT_POLL_SECONDS)
        self.address: tuple[str, int] = ("127.0.0.1", self._listener.getsockname()[1])
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket | Stream] = set()
        # One lock per relayed stream, held by its pump around each send and by whoever closes
        # it. paramiko builds a channel's DATA (and CLOSE) messages under its own lock but sends
        # them after releasing it, so a close racing a send can put DATA on the wire after
        # CLOSE: sshd then drops the whole connection ("data packet referred to nonexistent
        # channel"), failing every other check of the host (seen in lab drills).
        self._send_locks: dict[int, threading.Lock] = {}
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name=f"drcheck-forward-{self.address[1]}")
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            conn.settimeout(None)
            threading.Thread(target=self._serve, args=(conn,), name="drcheck-forward-conn",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        if not self._track(conn):
            conn.close()
            return
        try:
            stream = self._target.open_stream(self._host, self._port, self._timeout)
        except (StreamError, TargetError, CouldNotObserve) as exc:
            log.warning("forward to %s:%s via %s: %s", self._host, self._port,
                        self._target.name, exc)
            self._release(conn)
            return
        send_lock = threading.Lock()
        with self._lock:
            self._send_locks[id(stream)] = send_lock
        if not self._track(stream):
            self._release(stream)
            self._release(conn)
            return
        def done() -> None:
            self._release(conn)
            self._release(stream)

        pair = _Pair(done)
        _start(lambda: _pump(conn.recv, stream, pair, send_lock), "drcheck-forward-up")
        _start(lambda: _pump(stream.recv, conn, pair), "drcheck-forward-down")

    def _track(self, item: socket.socket | Stream) -> bool:
        with self._lock:
            if self._stopped.is_set():
                return False
            self._open.add(item)
            return True

    def _release(self, item: socket.socket | Stream) -> None:
        with self._lock:
            self._open.discard(item)
        self._close(item)

    def _close(self, item: socket.socket | Stream) -> None:
        with self._lock:
            send_lock = self._send_locks.pop(id(item), None)
        if send_lock is None:
            _close(item)
            return
        # A send blocked on a full window must not keep the relay open for ever: after the
        # grace the stream is closed anyway.
        locked = send_lock.acquire(timeout=_SEND_GRACE_SECONDS)
        try:
            _close(item)
        finally:
            if locked:
                send_lock.release()

    def close(self) -> None:
        self._stopped.set()
        # shutdown() stops listening at once (Linux) and wakes accept(); close() alone would
        # leave the port accepting until the accept thread's poll returns.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(2 * _ACCEPT_POLL_SECONDS)
        with self._lock:
            items = list(self._open)
            self._open.clear()
        for item in items:
            self._close(item)


class _Pair:
    """Runs ``on_done`` when both directions of one relayed connection have ended."""

    def __init__(self, on_done: Callable[[], None]) -> None:
        self._left = 2
        self._lock = threading.Lock()
        self._on_done = on_done

    def one_done(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._on_done()


def _pump(recv: Callable[[int], bytes], sink: socket.socket | Stream, pair: _Pair,
          send_lock: threading.Lock | None = None) -> None:
    guard = send_lock if send_lock is not None else contextlib.nullcontext()
    try:
        while True:
            data = recv(_CHUNK)
            if not data:
                break
            with guard:
                sink.sendall(data)
    except (OSError, EOFError):
        pass  # either side closed: the relay ends
    finally:
        with guard:
            _half_close(sink)
        pair.one_done()


def _half_close(sink: socket.socket | Stream) -> None:
    """Pass the end of one direction on, so request/response protocols see EOF and reply."""
    with contextlib.suppress(OSError, EOFError):
        if isinstance(sink, socket.socket):
            sink.shutdown(socket.SHUT_WR)
        elif hasattr(sink, "shutdown_write"):  # a paramiko Channel
            _channel_eof(sink)
        else:
            sink.close()


def _channel_eof(channel: Any) -> None:
    """EOF on a paramiko Channel, *sent* while holding the channel's lock.

    paramiko's shutdown_write() builds the EOF under the lock but sends it after releasing it.
    If the far end's CLOSE is handled in between (the server closed its side at the same
    moment: an LDAP server after unbind), paramiko's CLOSE reply goes out first and our EOF
    after it, for a channel sshd has already freed; OpenSSH then drops the whole connection
    ("ieof packet referred to nonexistent channel"), failing every other check of the host
    (seen in lab drills). Holding the lock makes the transport thread's close handling wait
    until the EOF is on the wire.
    """
    lock = getattr(channel, "lock", None)
    transport = getattr(channel, "transport", None)
    clear = getattr(transport, "clear_to_send", None)
    if lock is None or transport is None or clear is None or not clear.is_set():
        # Not the paramiko we know, or a re-key in progress (sending under the lock could
        # then wait for the transport thread that waits for the lock): plain shutdown.
        channel.shutdown_write()
        return
    with lock:
        if channel.closed or channel.eof_sent:
            return
        message = channel._send_eof()
        if message is not None:
            transport._send_user_message(message)


def _close(item: socket.socket | Stream) -> None:
    with contextlib.suppress(OSError, EOFError):
        if isinstance(item, socket.socket):
            # close() alone neither wakes a thread blocked in recv() on it nor sends the FIN
            # while that recv() holds the socket; shutdown() does both.
            item.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError, EOFError):
        item.close()


def _start(run: Callable[[], None], name: str) -> None:
    threading.Thread(target=run, name=name, daemon=True).start()
