"""``--dr-shard=K/N``: a deterministic 1/N of the hosts, so N CI jobs cover a large estate.

Hosts are never split (one connection per host, and a host's checks share one batch). They
are dealt to shards by number of checks, largest first, each to the shard with the fewest
checks so far (ties: the lower shard, then host name), which keeps the shards' wall times
close. The assignment depends only on the inventory, so every job of the matrix computes the
same one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """Raises ValueError with a one-line message."""
    match = _SHARD.match(text)
    if not match:
        raise ValueError(f"--dr-shard={text}: write K/N, e.g. --dr-shard=2/4 for the second "
                         "of four jobs")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ValueError(f"--dr-shard={text}: N must be at least 1")
    if not 1 <= index <= count:
        raise ValueError(f"--dr-shard={text}: K must be between 1 and {count} "
                         "(shards are numbered from 1)")
    return Shard(index, count)


def assign(host_checks: Iterable[tuple[str, int]], count: int) -> dict[str, int]:
    """host -> shard number (1-based), from (host, number of checks) pairs."""
    loads = [0] * count
    assignment: dict[str, int] = {}
    for host, checks in sorted(host_checks, key=lambda pair: (-pair[1], pair[0])):
        shard = min(range(count), key=lambda i: (loads[i], i))
        loads[shard] += max(1, checks)
        assignment[host] = shard + 1
    return assignment


def hosts_of(shard: Shard, host_checks: Iterable[tuple[str, int]]) -> set[str]:
    return {h for h, s in assign(host_checks, shard.count).items() if s == shard.index}
