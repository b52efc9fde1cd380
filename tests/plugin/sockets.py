"""Real TCP endpoints on 127.0.0.1 for drills run through pytester."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class Listener:
    """A real TCP listener on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self, banner: bytes = b"") -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.banner = banner
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.banner:
                conn.sendall(self.banner)
            self.held.append(conn)  # kept open: a silent peer, like a hung sshd

    def close(self) -> None:
        stop_listening(self.sock)
        for conn in self.held:
            conn.close()


class AcceptAndClose:
    """A port that accepts each connection and closes it at once (no banner, no answer)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def close(self) -> None:
        stop_listening(self.sock)


def stop_listening(sock: socket.socket) -> None:
    """Close a listening socket for good, even while a thread waits in accept() on it.

    close() alone does not wake that thread on Linux, and the kernel keeps the socket listening
    until accept() returns: the port would accept one more connection after a "service down".
    shutdown() wakes the accept (it fails with EINVAL) and stops the listening at once.
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def closed_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def blackhole() -> Iterator[int]:
    """A port whose SYNs go unanswered: its accept queue is full, so Linux drops new SYNs.

    The loopback stand-in for a firewall that drops packets (connect times out).
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    try:
        yield port
    finally:
        filler.close()
        listener.close()
