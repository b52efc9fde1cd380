"""Reading from a Stream under a deadline."""

from __future__ import annotations

import time

from pytest_drcheck.targets.base import Stream


class StreamTimeout(Exception):
    pass


def recv_exact(stream: Stream, size: int, deadline: float) -> bytes:
    """Exactly ``size`` bytes, or StreamTimeout at the deadline, or EOFError if closed early."""
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        left = deadline - time.monotonic()
        if left <= 0:
            raise StreamTimeout
        stream.settimeout(left)
        try:
            chunk = stream.recv(remaining)
        except TimeoutError:
            raise StreamTimeout from None
        if not chunk:
            raise EOFError(f"connection closed after {size - remaining} of {size} bytes")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
