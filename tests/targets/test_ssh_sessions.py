"""Session slots: commands over one connection take turns, and nobody waits for ever."""

from __future__ import annotations

import math
import socket
import statistics
import threading
import time
from collections.abc import Callable

from pytest_drcheck.targets.base import Target
from pytest_drcheck.targets.ssh import CLIENT_GRACE_SECONDS, SshTarget
from pytest_drcheck.targets.ssh.slots import SessionSlots
from tests.targets.conftest import MakeTarget


def command_round_trip(target: Target, rounds: int = 3) -> float:
    """Median seconds of one `true` on this connection, as the machine is loaded right now."""
    samples = []
    for _ in range(rounds):
        started = time.monotonic()
        assert target.run("true", 60).ok
        samples.append(time.monotonic() - started)
    return statistics.median(samples)


def wait_until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def test_slots_are_granted_in_arrival_order() -> None:
    slots = SessionSlots(1)
    assert slots.acquire(5)
    granted: list[int] = []

    def waiter(index: int) -> None:
        assert slots.acquire(30)
        granted.append(index)
        slots.release()

    threads = []
    for index in range(5):
        thread = threading.Thread(target=waiter, args=(index,))
        thread.start()
        threads.append(thread)
        wait_until(lambda n=index: slots.waiting() == n + 1, 10)
    slots.release()
    for thread in threads:
        thread.join(10)
    assert granted == [0, 1, 2, 3, 4]


def test_a_releaser_asking_again_queues_behind_the_waiter() -> None:
    slots = SessionSlots(1)
    assert slots.acquire(5)
    order: list[str] = []

    def waiter() -> None:
        assert slots.acquire(30)
        order.append("waiter")
        slots.release()

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_until(lambda: slots.waiting() == 1, 10)
    slots.release()
    assert slots.acquire(30)  # at once again, as a loop of short commands does
    order.append("releaser")
    slots.release()
    thread.join(10)
    assert order == ["waiter", "releaser"]


def test_a_waiter_gives_up_only_when_nothing_moves() -> None:
    slots = SessionSlots(1)
    assert slots.acquire(5)
    started = time.monotonic()
    assert not slots.acquire(0.2)
    assert time.monotonic() - started >= 0.2
    assert slots.waiting() == 0  # the one who gave up left the queue
    slots.release()
    assert slots.acquire(0.2)


def test_a_waiting_command_is_not_starved_by_a_loop_of_short_ones(
        make_target: MakeTarget) -> None:
    # One slot; a thread runs short commands back to back (release, ask again at once). A
    # command that arrives meanwhile must get the next turn, not wait for the whole loop.
    target = make_target(max_sessions=1)
    target.connect()
    round_trip = command_round_trip(target)
    # Room for the waiter's own command on a loaded runner, from the measured round trip.
    waiter_timeout = max(1.0, 5 * round_trip)
    # Long enough that, without turns, the waiter would time out three times over.
    loops = math.ceil(3 * (waiter_timeout + CLIENT_GRACE_SECONDS) / round_trip) + 5
    loop_done = threading.Event()
    looped: list[bool] = []

    def busy_loop() -> None:
        for _ in range(loops):
            looped.append(target.run("true", 60).ok)
        loop_done.set()

    thread = threading.Thread(target=busy_loop)
    thread.start()
    wait_until(lambda: len(looped) >= 2, 30)
    result = target.run("echo my turn", waiter_timeout)
    finished_before_the_loop = not loop_done.is_set()
    thread.join(loops * round_trip * 10 + 30)
    assert (result.stdout, result.ok) == ("my turn\n", True)
    assert finished_before_the_loop
    assert looped == [True] * loops


def nodelay(target: SshTarget) -> int:
    sock = target.transport.sock
    value: int = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    return value


def test_the_ssh_socket_sends_small_messages_at_once(make_target: MakeTarget) -> None:
    # Without TCP_NODELAY each exec and channel open waits out Nagle + delayed ACK (~40 ms);
    # benchmarks/ssh_costs.py shows the cost.
    target = make_target()
    target.connect()
    assert nodelay(target) != 0


def test_a_jump_hosts_socket_sends_small_messages_at_once(make_target: MakeTarget) -> None:
    bastion = make_target(name="bastion")
    app01 = make_target(jump=bastion)
    assert app01.run("echo through", 60).stdout == "through\n"
    # app01's own transport rides on a channel of the bastion's: the bastion's TCP socket is
    # the one on the wire.
    assert nodelay(bastion) != 0
