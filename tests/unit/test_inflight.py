"""Single flight: callers asking for the same key meanwhile share one computation."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from pytest_drcheck.inflight import InFlight


def test_callers_meanwhile_share_one_computation_and_later_ones_compute_afresh() -> None:
    shared: InFlight[int] = InFlight()
    release = threading.Event()
    entered = threading.Event()
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        entered.set()
        assert release.wait(30)
        return len(calls)

    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(shared.share, "k", compute)
        assert entered.wait(30)
        others = [pool.submit(shared.share, "k", compute) for _ in range(3)]
        release.set()
        answers = [first.result(30), *(f.result(30) for f in others)]
    # The three others joined the flight (answer 1) or, arriving after it landed, computed
    # afresh: every computation's answer reached exactly the callers that ran or joined it.
    assert answers[0] == 1
    assert len(calls) == 1 + sum(answer != 1 for answer in answers[1:])
    assert shared.share("k", lambda: 42) == 42  # nothing kept afterwards


def test_an_exception_reaches_every_waiter_and_is_not_remembered() -> None:
    shared: InFlight[int] = InFlight()
    release = threading.Event()
    entered = threading.Event()

    def broken() -> int:
        entered.set()
        assert release.wait(30)
        raise OSError("disk counters unreadable")

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(shared.share, "k", broken)
        assert entered.wait(30)
        waiter = pool.submit(shared.share, "k", lambda: 7)
        release.set()
        for future in (first, waiter):
            with pytest.raises(OSError, match="disk counters unreadable"):
                future.result(30)
    assert shared.share("k", lambda: 7) == 7


def test_a_waiter_gives_up_at_its_timeout() -> None:
    shared: InFlight[int] = InFlight()
    release = threading.Event()
    entered = threading.Event()

    def slow() -> int:
        entered.set()
        assert release.wait(30)
        return 1

    with ThreadPoolExecutor(1) as pool:
        owner = pool.submit(shared.share, "k", slow)
        assert entered.wait(30)
        with pytest.raises(TimeoutError):
            shared.share("k", lambda: 2, timeout=0.01)
        release.set()
        assert owner.result(30) == 1
