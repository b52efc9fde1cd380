"""The cap on streams open at once to one destination, across all hosts (targets.destinations):
real streams (local sockets and SSH direct-tcpip channels) to a real echo server."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from pytest_drcheck.model import CouldNotObserve
from pytest_drcheck.targets import destinations
from pytest_drcheck.targets.base import Stream, StreamError
from pytest_drcheck.targets.destinations import StreamWaitTimedOut
from pytest_drcheck.targets.local import LocalTarget
from tests.targets.conftest import EchoServer, MakeTarget


@pytest.fixture
def cap_of() -> Iterator[Callable[[int], None]]:
    yield destinations.configure
    destinations.configure(destinations.DEFAULT_STREAMS_PER_DESTINATION)


def round_trip(stream: Stream) -> bytes:
    stream.settimeout(5)
    stream.sendall(b"ping")
    return stream.recv(10)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    # Progress, not a time: bounded only so that a broken cap fails instead of hanging.
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_the_next_stream_waits_for_a_slot_and_gets_the_one_given_back(
        cap_of: Callable[[int], None], echo_server: EchoServer) -> None:
    cap_of(2)
    target = LocalTarget("app01")
    held = [target.open_stream("127.0.0.1", echo_server.port, 5) for _ in range(2)]
    opened: list[Stream] = []
    waiter = threading.Thread(target=lambda: opened.append(
        target.open_stream("127.0.0.1", echo_server.port, 60)))
    waiter.start()
    slots = destinations.cap().slots("127.0.0.1", echo_server.port)
    wait_for(lambda: slots.waiting() == 1, "the third stream never queued")
    wait_for(lambda: echo_server.accepted == 2, "the server never saw two connections")
    assert not opened and slots.in_use() == 2
    held[0].close()
    waiter.join(30)
    assert len(opened) == 1
    assert round_trip(opened[0]) == b"ping"
    assert echo_server.accepted == 3
    # Still a socket: the forwarder half-closes sockets its own way.
    assert isinstance(opened[0], socket.socket)
    for stream in (held[1], opened[0], held[1]):  # closing twice gives one slot back
        stream.close()
    assert slots.in_use() == 0


def test_a_wait_that_outlasts_the_timeout_says_so(cap_of: Callable[[int], None],
                                                  echo_server: EchoServer) -> None:
    cap_of(1)
    target = LocalTarget("app01")
    held = target.open_stream("127.0.0.1", echo_server.port, 5)
    with pytest.raises(StreamWaitTimedOut) as caught:
        target.open_stream("127.0.0.1", echo_server.port, 0.3)
    # Could not observe, never a network outcome a reach check would judge ("filtered").
    assert isinstance(caught.value, CouldNotObserve)
    assert not isinstance(caught.value, StreamError)
    assert re.fullmatch(rf"waited \d+ ms for a stream to 127\.0\.0\.1:{echo_server.port}: "
                        r"1 in use \(--dr-streams-per-destination\)", str(caught.value))
    assert round_trip(held) == b"ping" and echo_server.accepted == 1
    held.close()
    assert round_trip(target.open_stream("127.0.0.1", echo_server.port, 5)) == b"ping"


def test_other_destinations_do_not_wait(cap_of: Callable[[int], None],
                                        echo_server: EchoServer) -> None:
    cap_of(1)
    other = EchoServer()
    target = LocalTarget("app01")
    try:
        held = target.open_stream("127.0.0.1", echo_server.port, 5)
        assert round_trip(target.open_stream("127.0.0.1", other.port, 0.5)) == b"ping"
        held.close()
    finally:
        other.close()


def test_a_refused_stream_gives_its_slot_back(cap_of: Callable[[int], None],
                                              closed_port: int) -> None:
    cap_of(1)
    target = LocalTarget("app01")
    for _ in range(2):
        with pytest.raises(StreamError) as caught:
            target.open_stream("127.0.0.1", closed_port, 2)
        assert caught.value.outcome == "refused"
    assert destinations.cap().slots("127.0.0.1", closed_port).in_use() == 0


def test_ssh_streams_of_all_hosts_share_the_cap(cap_of: Callable[[int], None],
                                                make_target: MakeTarget,
                                                echo_server: EchoServer) -> None:
    cap_of(1)
    first, second = make_target(name="app01"), make_target(name="app02")
    held = first.open_stream("127.0.0.1", echo_server.port, 5)
    assert round_trip(held) == b"ping"
    with pytest.raises(StreamWaitTimedOut, match=rf"for a stream to 127\.0\.0\.1:"
                                                 rf"{echo_server.port}: 1 in use"):
        second.open_stream("127.0.0.1", echo_server.port, 0.3)
    held.close()
    stream = second.open_stream("127.0.0.1", echo_server.port, 5)
    assert round_trip(stream) == b"ping"
    stream.close()
    assert destinations.cap().slots("127.0.0.1", echo_server.port).in_use() == 0


def test_the_cap_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        destinations.DestinationCap(0)
