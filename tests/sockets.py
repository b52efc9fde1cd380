"""Real TCP servers on 127.0.0.1 for tests: one accept loop, each server says what it does
with a connection."""

from __future__ import annotations

import contextlib
import socket
import threading


def stop_listening(sock: socket.socket) -> None:
    """Close a listening socket for good, even while a thread waits in accept() on it.

    close() alone does not wake that thread on Linux, and the kernel keeps the socket listening
    until accept() returns: the port would accept one more connection after a "service down".
    shutdown() wakes the accept (it fails with EINVAL) and stops the listening at once.
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class LoopbackServer:
    """Listens on a free port of 127.0.0.1 and hands each accepted connection to
    ``serve(conn, index)`` (index counts connections from 0) on its accept thread.

    The accept thread starts in ``__init__``: a subclass sets its own attributes before it
    calls ``super().__init__()``. A conversation that takes time runs in ``converse``, on a
    thread of its own, so that the next connection is accepted meanwhile.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            index, self.accepted = self.accepted, self.accepted + 1
            self.serve(conn, index)

    def serve(self, conn: socket.socket, index: int) -> None:
        threading.Thread(target=self._converse, args=(conn, index), daemon=True).start()

    def _converse(self, conn: socket.socket, index: int) -> None:
        with contextlib.suppress(OSError, EOFError):
            self.converse(conn, index)

    def converse(self, conn: socket.socket, index: int) -> None:
        conn.close()

    def close(self) -> None:
        stop_listening(self.sock)


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    """``size`` bytes from ``conn``; EOFError if it closes first."""
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data
