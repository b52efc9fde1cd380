from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.plugin import sockets
from tests.plugin.sockets import Listener


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def closed_port() -> int:
    return sockets.closed_port()
