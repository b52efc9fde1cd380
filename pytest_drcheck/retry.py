"""Eventually-semantics for ``--dr-wait``: how long to wait between attempts of a failing check.

Recovery instances are often still booting or starting agents when checking begins, so a
failure before the deadline is retried. Waits grow geometrically (a fresh instance answers
within seconds; one that is still booting needs minutes, and should not be hammered) up to a
cap, so a check that goes green is seen within ``cap`` seconds of doing so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    first: float = 0.5
    factor: float = 2.0
    cap: float = 15.0

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(self.cap, delay * self.factor)
