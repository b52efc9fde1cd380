"""How many hosts are checked at once: a limit that follows how fast the hosts answer.

A fixed number of hosts at once is either too few (the network's round trips leave the client
idle) or too many: past what the client's CPU, the instances' CPU or a shared server (a resolver,
a directory) can serve, every host's batch stretches, batches miss their own timeouts and the
drill gets slower *and* reports errors it caused itself. So the limit moves, in the spirit of TCP
Vegas and of latency-gradient concurrency limiters: it grows while each host's batch round trip
stays near the best one observed for the same kind of batch, and shrinks when round trips
stretch well past it or a whole batch times out. ``--dr-workers`` stays the ceiling.

One shrink per *epoch*: a host admitted before the last shrink saw the load that caused it, so
its stretched round trip is not news and must not cut the limit again (that would collapse it
to the floor on one overload, as TCP would without its one-reduction-per-window rule). Only
hosts admitted under the current limit can cut it further.

The limiter paces; it never judges. A batch that timed out is reported exactly as it would be
without it; the limiter only keeps the next hosts from meeting the same overload.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass

# A round trip within this multiple of the best one observed means the hosts are keeping up.
GROW_WITHIN = 2.0
# Past this multiple the hosts (or the client, or a shared server) are queueing: back off.
SHRINK_BEYOND = 4.0
# Multiplicative decreases: a stretched round trip is a warning, a timed-out batch a loss.
STRETCH_BACKOFF = 0.75
TIMEOUT_BACKOFF = 0.5


class Decision(enum.Enum):
    GROW = "grow"
    HOLD = "hold"
    SHRINK = "shrink"


@dataclass
class AdaptiveLimit:
    """The policy alone: observations in, limit out (no threads, no clock; ``HostGate`` locks).

    ``window`` is fractional so that growth after the first shrink can add about one host per
    limit's worth of good round trips (congestion avoidance) instead of one per round trip
    (slow start, until the first sign of overload)."""

    ceiling: int
    initial: int
    floor: int = 1

    def __post_init__(self) -> None:
        self.ceiling = max(1, self.ceiling)
        self.floor = max(1, min(self.floor, self.ceiling))
        self.window = float(max(self.floor, min(self.initial, self.ceiling)))
        self.epoch = 0
        self.slow_start = True
        # The best (shortest) round trip seen per kind of batch: comparable work only.
        self.best: dict[str, float] = {}

    @property
    def limit(self) -> int:
        return max(self.floor, min(self.ceiling, int(self.window)))

    def round_trip(self, kind: str, seconds: float, epoch: int) -> Decision:
        """A batch of ``kind`` answered after ``seconds``, for a host admitted in ``epoch``."""
        best = self.best.get(kind)
        if best is None or seconds < best:
            self.best[kind] = best = seconds
        if seconds <= GROW_WITHIN * best:
            return self._grow()
        if seconds > SHRINK_BEYOND * best:
            return self._shrink(epoch, STRETCH_BACKOFF)
        return Decision.HOLD

    def timed_out(self, epoch: int) -> Decision:
        """A whole batch, for a host admitted in ``epoch``, did not answer within its timeout."""
        return self._shrink(epoch, TIMEOUT_BACKOFF)

    def _grow(self) -> Decision:
        if self.window >= self.ceiling:
            return Decision.HOLD
        self.window = min(float(self.ceiling),
                          self.window + (1.0 if self.slow_start else 1.0 / self.window))
        return Decision.GROW

    def _shrink(self, epoch: int, factor: float) -> Decision:
        if epoch != self.epoch:  # admitted under an earlier, larger limit: already answered
            return Decision.HOLD
        self.slow_start = False
        if self.window <= self.floor:
            return Decision.HOLD
        self.window = max(float(self.floor), self.window * factor)
        self.epoch += 1
        return Decision.SHRINK


class HostGate:
    """Admits host jobs while fewer than the limit are running; thread-safe."""

    def __init__(self, limit: AdaptiveLimit) -> None:
        self._policy = limit
        self._changed = threading.Condition()
        self.active = 0
        self.peak = 0  # most hosts admitted at once (for the run's log)

    @property
    def limit(self) -> int:
        with self._changed:
            return self._policy.limit

    def enter(self) -> int:
        """Wait for room, take it, and return the epoch the host is admitted in."""
        with self._changed:
            self._changed.wait_for(lambda: self.active < self._policy.limit)
            self.active += 1
            self.peak = max(self.peak, self.active)
            return self._policy.epoch

    def summary(self) -> str:
        with self._changed:
            policy = self._policy
            return (f"hosts checked at once: at most {self.peak}, limit {policy.limit} at the "
                    f"end (ceiling {policy.ceiling}), cut {policy.epoch} times")

    def leave(self) -> None:
        with self._changed:
            self.active -= 1
            self._changed.notify()

    def round_trip(self, kind: str, seconds: float, epoch: int) -> Decision:
        with self._changed:
            decision = self._policy.round_trip(kind, seconds, epoch)
            if decision is Decision.GROW:
                self._changed.notify_all()
            return decision

    def timed_out(self, epoch: int) -> Decision:
        with self._changed:
            return self._policy.timed_out(epoch)
