"""The test endpoints themselves: a closed listener must refuse at once, or a "service down"
scenario would quietly test an open port."""

from __future__ import annotations

import socket
import time

import pytest

from tests.plugin.sockets import AcceptAndClose, Listener


@pytest.mark.parametrize("endpoint", [Listener, AcceptAndClose])
def test_a_closed_endpoint_refuses_the_next_connection(endpoint: type[Listener]) -> None:
    opened = endpoint()
    with socket.create_connection(("127.0.0.1", opened.port), timeout=5) as first:
        # Served: the endpoint's thread goes straight back to accept(), where close() alone
        # would not reach it.
        if isinstance(opened, Listener):
            while opened.accepted == 0:
                time.sleep(0.001)
        else:
            assert first.recv(1) == b""  # closed by the endpoint
    opened.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", opened.port), timeout=5).close()
