"""local_forward: a loopback port relayed through a target's open_stream."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

import pytest

from pytest_drcheck.targets.forward import local_forward
from pytest_drcheck.targets.local import LocalTarget
from pytest_drcheck.targets.names import NameNotResolved
from tests.targets.conftest import EchoServer, MakeTarget
from tests.targets.test_names import NO_ANSWER, LocalWithResolver, program


def round_trip(address: tuple[str, int], payload: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)  # the relay passes the half-close on; echo then ends
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def reply_or_reset(address: tuple[str, int], payload: bytes) -> bytes:
    # A connection closed with the request possibly unread: the client sees EOF or a reset.
    try:
        return round_trip(address, payload)
    except ConnectionResetError:
        return b""


def test_forward_through_ssh_relays_an_echo_round_trip(make_target: MakeTarget,
                                                       echo_server: EchoServer) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    with local_forward(make_target(), "127.0.0.1", echo_server.port, 3) as address:
        assert address[0] == "127.0.0.1"
        assert round_trip(address, payload) == payload


def test_forward_serves_concurrent_connections(make_target: MakeTarget,
                                               echo_server: EchoServer) -> None:
    replies: dict[int, bytes] = {}
    with local_forward(make_target(), "127.0.0.1", echo_server.port, 3) as address:
        threads = [threading.Thread(target=lambda i=i: replies.__setitem__(
            i, round_trip(address, f"hello {i}".encode()))) for i in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert replies == {i: f"hello {i}".encode() for i in range(10)}
    assert echo_server.accepted == 10


def test_forward_through_the_local_target(echo_server: EchoServer) -> None:
    with local_forward(LocalTarget("runner"), "127.0.0.1", echo_server.port, 3) as address:
        assert round_trip(address, b"local") == b"local"


def test_a_stream_that_cannot_open_closes_the_client_and_is_logged(
        make_target: MakeTarget, closed_port: int, caplog: pytest.LogCaptureFixture) -> None:
    with (caplog.at_level(logging.WARNING, logger="pytest_drcheck.targets.forward"),
          local_forward(make_target(), "127.0.0.1", closed_port, 3) as address):
        assert reply_or_reset(address, b"anyone?") == b""
    assert (f"forward to 127.0.0.1:{closed_port} via app01: 127.0.0.1:{closed_port} from app01: "
            "connection refused") in caplog.messages


def test_the_listener_is_gone_after_the_block(echo_server: EchoServer) -> None:
    with local_forward(LocalTarget("runner"), "127.0.0.1", echo_server.port, 3) as address:
        held = socket.create_connection(address, timeout=5)
        held.sendall(b"x")
        assert held.recv(1) == b"x"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=2)
    held.settimeout(2)
    assert held.recv(1) == b""  # relayed connections are closed too
    held.close()


def test_a_name_that_does_not_resolve_is_raised_to_the_caller_not_lost_in_a_thread(
        tmp_path: Path) -> None:
    getent = program(tmp_path, "noanswer", "exit 2")
    with pytest.raises(NameNotResolved) as caught, local_forward(
            LocalWithResolver(getent), "dc01.corp.example", 389, 3):
        raise AssertionError("the forward must not start")
    assert str(caught.value) == f"dc01.corp.example does not resolve on runner ({NO_ANSWER})"
