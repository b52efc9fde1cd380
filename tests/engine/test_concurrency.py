"""The adaptive limit on hosts checked at once: its decisions from fed observations (round trips
in seconds as numbers, never measured), and the gate that admits host jobs under it."""

from __future__ import annotations

import threading

from pytest_drcheck.concurrency import (
    GROW_WITHIN,
    SHRINK_BEYOND,
    AdaptiveLimit,
    Decision,
    HostGate,
)

KIND = "batch:dns,nic"
# Generous: only ever waited for by threads that are released (never a measured duration).
SETTLE = 60.0


def test_starts_at_the_initial_limit_within_floor_and_ceiling() -> None:
    assert AdaptiveLimit(ceiling=32, initial=8, floor=2).limit == 8
    assert AdaptiveLimit(ceiling=4, initial=8, floor=2).limit == 4  # --dr-workers=4 is a ceiling
    assert AdaptiveLimit(ceiling=1, initial=8, floor=2).limit == 1  # floor never above ceiling
    assert AdaptiveLimit(ceiling=32, initial=1, floor=2).limit == 2


def test_round_trips_near_the_best_grow_one_host_each_until_the_ceiling() -> None:
    limit = AdaptiveLimit(ceiling=10, initial=8, floor=2)
    assert limit.round_trip(KIND, 1.0, 0) is Decision.GROW
    assert limit.limit == 9
    assert limit.round_trip(KIND, GROW_WITHIN * 1.0, 0) is Decision.GROW
    assert limit.limit == 10
    assert limit.round_trip(KIND, 1.0, 0) is Decision.HOLD  # at the ceiling
    assert limit.limit == 10


def test_a_round_trip_between_near_and_stretched_holds() -> None:
    limit = AdaptiveLimit(ceiling=32, initial=8, floor=2)
    limit.round_trip(KIND, 1.0, 0)
    before = limit.limit
    assert limit.round_trip(KIND, (GROW_WITHIN + SHRINK_BEYOND) / 2, 0) is Decision.HOLD
    assert limit.limit == before


def test_a_stretched_round_trip_shrinks_and_opens_a_new_epoch() -> None:
    limit = AdaptiveLimit(ceiling=32, initial=8, floor=2)
    limit.round_trip(KIND, 1.0, 0)  # best 1 s, limit 9
    assert limit.round_trip(KIND, SHRINK_BEYOND * 1.0 + 0.5, 0) is Decision.SHRINK
    assert limit.limit == 6  # 9 x 0.75
    assert limit.epoch == 1


def test_hosts_admitted_before_a_shrink_do_not_shrink_it_again() -> None:
    # Eight hosts saw the same overload: one cut, not eight (which would reach the floor).
    limit = AdaptiveLimit(ceiling=32, initial=16, floor=2)
    limit.round_trip(KIND, 1.0, 0)
    decisions = [limit.round_trip(KIND, 10.0, 0) for _ in range(8)]
    assert decisions == [Decision.SHRINK] + [Decision.HOLD] * 7
    assert limit.limit == 12  # 17 x 0.75
    # A host admitted under the new limit that still stretches cuts it again.
    assert limit.round_trip(KIND, 10.0, limit.epoch) is Decision.SHRINK
    assert limit.limit == 9


def test_a_timed_out_batch_halves_the_limit_once_per_epoch() -> None:
    limit = AdaptiveLimit(ceiling=32, initial=16, floor=2)
    assert limit.timed_out(0) is Decision.SHRINK
    assert limit.limit == 8
    assert limit.timed_out(0) is Decision.HOLD
    assert limit.limit == 8
    assert limit.timed_out(1) is Decision.SHRINK
    assert limit.limit == 4


def test_never_below_the_floor() -> None:
    limit = AdaptiveLimit(ceiling=32, initial=3, floor=2)
    assert limit.timed_out(0) is Decision.SHRINK
    assert limit.limit == 2
    assert limit.timed_out(limit.epoch) is Decision.HOLD  # already at the floor
    assert limit.limit == 2


def test_after_the_first_shrink_growth_is_about_one_host_per_limit_of_round_trips() -> None:
    limit = AdaptiveLimit(ceiling=32, initial=8, floor=2)
    limit.round_trip(KIND, 1.0, 0)  # 9
    limit.timed_out(0)  # 4.5 -> limit 4, no more slow start
    assert limit.limit == 4
    for _ in range(4):
        assert limit.round_trip(KIND, 1.0, limit.epoch) is Decision.GROW
    assert limit.limit == 5
    assert limit.limit < 8


def test_round_trips_compare_only_with_the_same_kind_of_batch() -> None:
    # A host whose checks do more (a slower kind of batch) is not a sign of overload.
    limit = AdaptiveLimit(ceiling=32, initial=8, floor=2)
    limit.round_trip("batch:reach", 0.1, 0)
    assert limit.round_trip("batch:dns,ldap,nic,time", 3.0, 0) is Decision.GROW
    assert limit.best == {"batch:reach": 0.1, "batch:dns,ldap,nic,time": 3.0}
    assert limit.limit == 10


def test_a_faster_round_trip_becomes_the_best() -> None:
    limit = AdaptiveLimit(ceiling=32, initial=8, floor=2)
    limit.round_trip(KIND, 2.0, 0)
    limit.round_trip(KIND, 0.5, 0)
    assert limit.best[KIND] == 0.5
    assert limit.round_trip(KIND, 2.5, 0) is Decision.SHRINK  # 5x the new best


def test_the_gate_admits_up_to_the_limit_and_the_next_host_when_one_leaves() -> None:
    gate = HostGate(AdaptiveLimit(ceiling=4, initial=2, floor=1))
    assert [gate.enter(), gate.enter()] == [0, 0]
    admitted = threading.Event()
    waiter = threading.Thread(target=lambda: (gate.enter(), admitted.set()), daemon=True)
    waiter.start()
    # A gate that let the third host in would set the event at once; a short look suffices.
    assert not admitted.wait(0.2)
    assert gate.active == 2
    gate.leave()
    assert admitted.wait(SETTLE)
    assert gate.active == 2


def test_the_gate_admits_a_waiting_host_as_soon_as_the_limit_grows() -> None:
    gate = HostGate(AdaptiveLimit(ceiling=4, initial=1, floor=1))
    gate.enter()
    admitted = threading.Event()
    waiter = threading.Thread(target=lambda: (gate.enter(), admitted.set()), daemon=True)
    waiter.start()
    assert gate.round_trip(KIND, 1.0, 0) is Decision.GROW
    assert admitted.wait(SETTLE)
    assert (gate.active, gate.limit) == (2, 2)


def test_the_gate_hands_out_the_epoch_a_host_is_admitted_in() -> None:
    gate = HostGate(AdaptiveLimit(ceiling=8, initial=4, floor=1))
    first = gate.enter()
    assert gate.timed_out(first) is Decision.SHRINK
    gate.leave()
    assert gate.enter() == first + 1
    assert gate.timed_out(first) is Decision.HOLD  # the earlier host's batch: already answered


def test_the_gate_sums_up_how_many_hosts_it_let_in_at_once() -> None:
    gate = HostGate(AdaptiveLimit(ceiling=32, initial=8, floor=2))
    for _ in range(3):
        gate.enter()
    gate.leave()
    gate.enter()
    gate.timed_out(0)
    assert gate.summary() == ("hosts checked at once: at most 3, limit 4 at the end "
                              "(ceiling 32), cut 1 times")
