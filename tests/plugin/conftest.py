from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.plugin.sockets import Listener


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def closed_port() -> int:
    sock = socket.create_server(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port
