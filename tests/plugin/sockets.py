"""Real TCP endpoints on 127.0.0.1 for drills run through pytester."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from tests.sockets import LoopbackServer


class Listener(LoopbackServer):
    """A real TCP listener on 127.0.0.1 that counts the connections it accepts and keeps
    them open, silent after an optional banner (like a hung sshd)."""

    def __init__(self, banner: bytes = b"") -> None:
        self.banner = banner
        self.held: list[socket.socket] = []
        super().__init__()

    def serve(self, conn: socket.socket, index: int) -> None:
        if self.banner:
            conn.sendall(self.banner)
        self.held.append(conn)

    def close(self) -> None:
        super().close()
        for conn in self.held:
            conn.close()


class AcceptAndClose(LoopbackServer):
    """A port that accepts each connection and closes it at once (no banner, no answer)."""

    def serve(self, conn: socket.socket, index: int) -> None:
        conn.close()


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
