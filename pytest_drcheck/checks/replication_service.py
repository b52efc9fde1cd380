"""The replication check's subjects about what the replication service says (AWS DRS when the
inventory uses it): ``throttle`` (its configured bandwidth throttle against what the sources
write) and ``backlog`` (its replication backlog, read twice across the check's window: growing
or not).

They exist only when a source is linked to the service: some recovery host whose ``source:``
names it is found through it (``drs:``), as the loader reports in ``linked_by``. Without that
the check has its ``link`` subject only, exactly as before. Each is its own subject, so a
service that cannot be read is an error of that subject alone and never hides the link's
verdict from the disk counters, and a throttle that is too low fails only ``throttle``.

The service's settings are read through ``ReplicationSettings`` (checks/replication_settings.py),
implemented by the linked recovery host's target: nothing here knows AWS.

DRS throttles each source server's replication agent on its own (``bandwidthThrottling``,
Mbit/s, 0 = not throttled), so each source's average write rate is compared with its own
throttle; the message gives the sources' totals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from pytest_drcheck.checks.base import CheckContext
from pytest_drcheck.checks.replication_settings import Backlog, ReplicationSettings, Throttle
from pytest_drcheck.model import CouldNotObserve, Observation
from pytest_drcheck.sizing import ThrottleFit, mbit_per_s
from pytest_drcheck.targets.base import TargetError

T = TypeVar("T")


def format_bytes(count: float) -> str:
    """Decimal units, as DRS and the sizing arithmetic count (1 GB = 10^9 bytes)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count:.0f} B"


def read_linked(ctx: CheckContext, source: str, linked_by: Mapping[str, Sequence[str]],
                what: str, read: Callable[[ReplicationSettings], T]) -> T:
    """``read`` through the first of the source's linked recovery hosts that answers; could
    not observe, naming each host's cause, when none does."""
    hosts = list(linked_by.get(source) or ())
    if not hosts:
        raise CouldNotObserve(
            f"cannot read {what} of {source}: no recovery host whose source: names it is found "
            "through the replication service (drs: {source_server_id: ...})")
    causes = []
    for host in hosts:
        try:
            target = ctx.target_of(host)
        except (KeyError, TargetError) as exc:
            causes.append(f"{host}: {exc}")
            continue
        if not isinstance(target, ReplicationSettings):
            causes.append(f"{host}: its target does not read the replication service")
            continue
        try:
            return read(target)
        except TargetError as exc:
            causes.append(str(exc) if len(hosts) == 1 else f"{host}: {exc}")
    raise CouldNotObserve(f"cannot read {what} of {source} through "
                          f"{', '.join(hosts)}: {'; '.join(causes)}")


def _each_source(sources: Sequence[str], read: Callable[[str], T]) -> dict[str, T]:
    with ThreadPoolExecutor(max_workers=min(16, len(sources))) as pool:
        futures = {source: pool.submit(read, source) for source in sources}
        return {source: future.result() for source, future in futures.items()}


# --- throttle ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottleLoad:
    # Each source's average write rate (bytes/s) and the basis it was measured on.
    average_bps: Mapping[str, float]
    basis: str
    throttles: Mapping[str, Throttle]


def read_throttles(ctx: CheckContext, sources: Sequence[str],
                   linked_by: Mapping[str, Sequence[str]], timeout: float
                   ) -> dict[str, Throttle]:
    return _each_source(sources, lambda source: read_linked(
        ctx, source, linked_by, "the replication throttle",
        lambda target: target.replication_throttle(timeout)))


def _throttle_text(throttle: Throttle) -> str:
    if throttle.mbit_per_s is None:
        return f"none ({throttle.origin}: not throttled)"
    return f"{throttle.mbit_per_s:g} Mbit/s ({throttle.origin})"


def judge_throttle(expected: str, value: ThrottleLoad, headroom: float) -> Observation:
    sources = list(value.throttles)
    average = mbit_per_s(sum(value.average_bps.values()))
    fits = {s: ThrottleFit(value.throttles[s].mbit_per_s, mbit_per_s(value.average_bps[s]),
                           headroom) for s in sources}
    service = value.throttles[sources[0]].service
    if len(sources) == 1:
        throttled = _throttle_text(value.throttles[sources[0]])
    else:
        throttled = ", ".join(f"{s} {_throttle_text(value.throttles[s])}" for s in sources)
    observed = (f"throttle {throttled}; the sources write {average:.2f} Mbit/s on average "
                f"{value.basis}")
    tight = [s for s in sources if fits[s].verdict == "tight"]
    if tight:
        observed += (f"; with headroom x{headroom:g} "
                     + ", ".join(f"{s} needs {fits[s].needed_mbit_per_s:.2f} Mbit/s"
                                 for s in tight))
    details = {"throttles": {s: {
        "throttle_mbit_s": value.throttles[s].mbit_per_s, "origin": value.throttles[s].origin,
        "average_mbit_s": round(fits[s].average_mbit_per_s, 4), "verdict": fits[s].verdict}
        for s in sources}, "average_mbit_s": round(average, 4), "headroom": headroom}
    limits = [value.throttles[s].mbit_per_s for s in sources]
    total = sum(limit for limit in limits if limit is not None)
    # What the throttles let through in all (the report's chart); None: one is unthrottled.
    details["throttle_mbit_s"] = None if None in limits else total
    too_low = [s for s in sources if fits[s].verdict == "too low"]
    if not too_low:
        return Observation.passed(expected, observed, **details)
    if len(sources) == 1 or (None not in limits and total < average):
        per_source = "" if len(sources) == 1 else (
            " (" + ", ".join(f"{s} {value.throttles[s].mbit_per_s:g}" for s in sources) + ")")
        reason = (f"{service} throttles replication to {total:g} Mbit/s{per_source}, below "
                  f"the {average:.2f} Mbit/s the sources write on average {value.basis}")
    else:
        reason = "; ".join(
            f"{service} throttles {s}'s replication to {value.throttles[s].mbit_per_s:g} "
            f"Mbit/s, below the {fits[s].average_mbit_per_s:.2f} Mbit/s it writes on "
            f"average {value.basis}" for s in too_low)
    return Observation.failed(expected, observed,
                              f"{reason}; replication lags and the RPO grows", **details)


# --- backlog -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BacklogGrowth:
    before: Mapping[str, Backlog]
    after: Mapping[str, Backlog]
    # Seconds between the two reads (from the middle of one to the middle of the other).
    elapsed_s: float


def observe_backlog(ctx: CheckContext, sources: Sequence[str],
                    linked_by: Mapping[str, Sequence[str]], window_s: float,
                    slack_s: float) -> BacklogGrowth:
    if window_s + slack_s > ctx.timeout:
        raise CouldNotObserve(f"a {window_s:g} s window does not fit in the check's "
                              f"{ctx.timeout:g} s timeout; raise timeout: or shorten window:")
    deadline = time.monotonic() + ctx.timeout - 1

    def read_all() -> tuple[dict[str, Backlog], float]:
        begun = time.monotonic()
        left = max(1.0, deadline - begun)
        read = _each_source(sources, lambda source: read_linked(
            ctx, source, linked_by, "the replication backlog",
            lambda target: target.replication_backlog(left)))
        return read, (begun + time.monotonic()) / 2

    before, first_at = read_all()
    # The second read starts a window after the middle of the first.
    time.sleep(max(0.0, first_at + window_s - time.monotonic()))
    after, second_at = read_all()
    return BacklogGrowth(before, after, second_at - first_at)


def judge_backlog(expected: str, value: BacklogGrowth) -> Observation:
    sources = list(value.before)
    elapsed = value.elapsed_s
    service = value.before[sources[0]].service

    def change(source: str) -> str:
        before = value.before[source].backlog_bytes
        after = value.after[source].backlog_bytes
        rate = (after - before) / elapsed
        span = f"{format_bytes(before)} to {format_bytes(after)} over {elapsed:.1f} s"
        if rate == 0:
            return f"{span} (unchanged)"
        return (f"{span} ({'+' if rate > 0 else '-'}{format_bytes(abs(rate))}/s, "
                f"{mbit_per_s(abs(rate)):.2f} Mbit/s)")

    if len(sources) == 1:
        observed = f"backlog {change(sources[0])} ({value.before[sources[0]].origin})"
    else:
        observed = "backlog " + ", ".join(f"{s} {change(s)}" for s in sources)
    details = {"backlog": {s: {
        "before_bytes": value.before[s].backlog_bytes, "after_bytes": value.after[s].backlog_bytes,
        "origin": value.before[s].origin,
        "growth_bytes_s": round((value.after[s].backlog_bytes
                                 - value.before[s].backlog_bytes) / elapsed, 1)}
        for s in sources}, "elapsed_s": round(elapsed, 3)}
    growing = [s for s in sources
               if value.after[s].backlog_bytes > value.before[s].backlog_bytes]
    if not growing:
        return Observation.passed(expected, observed, **details)
    reason = "; ".join(f"{service}'s replication backlog of {s} grew from {change(s)}"
                       for s in growing)
    return Observation.failed(expected, observed,
                              f"{reason}: replication is falling behind and the RPO grows",
                              **details)
