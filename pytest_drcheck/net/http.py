"""Minimal HTTP/1.1 over a Stream: a proxy CONNECT or a proxied GET, and the status line.

We only need the proxy's verdict (status code), never a body, so a full client library would
add nothing; and the request must travel over the instance's tunnel, not a local socket.
"""

from __future__ import annotations

import time

from pytest_drcheck.net.streams import StreamTimeout
from pytest_drcheck.targets.base import Stream

MAX_HEAD = 16384


def read_status(stream: Stream, deadline: float) -> tuple[int, str]:
    """(status code, reason phrase) of the response's first line."""
    buffer = b""
    while b"\r\n" not in buffer:
        left = deadline - time.monotonic()
        if left <= 0:
            raise StreamTimeout
        stream.settimeout(left)
        try:
            chunk = stream.recv(4096)
        except (TimeoutError, OSError) as exc:
            if isinstance(exc, TimeoutError) or "timed out" in str(exc):
                raise StreamTimeout from None
            raise
        if not chunk:
            raise EOFError("the proxy closed the connection without answering")
        buffer += chunk
        if len(buffer) > MAX_HEAD:
            raise ValueError("no HTTP status line in the proxy's answer")
    line = buffer.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {line[:60]!r}")
    return int(parts[1]), parts[2] if len(parts) > 2 else ""


def connect_request(host: str, port: int) -> bytes:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
            "User-Agent: pytest-drcheck\r\n\r\n").encode()


def get_request(url: str, host: str) -> bytes:
    return (f"GET {url} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pytest-drcheck\r\n"
            "Connection: close\r\n\r\n").encode()
