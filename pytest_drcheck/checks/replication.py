"""replication: is the replication link big enough for what the source servers write?

Each source server (``source:`` hosts, read over their read-only connection) is observed for
its disk writes in ``/proc/diskstats``: over a short window (``window: 10s``, a reading every
second: the average and the peak second) or from the counters since boot (``window: boot``: an
average only). The averages are summed over the sources and compared with the link's stated
bandwidth (``link: 100Mbit/s``): a link below the total average write rate never catches up,
replication lags and the RPO grows (``pytest_drcheck/sizing.py`` has the arithmetic; the
figure is before protocol overhead, so the verdict also says what the headroom factor asks).

Devices counted: whole disks (sd*, vd*, xvd*, hd*, nvme*n*), not partitions (their writes are
the disk's) nor loop/dm/md/zram devices (they would count the same writes twice), unless
``devices:`` names them (shell patterns: ``loop*``).

Could not observe (an error naming the cause): a source that cannot be reached or read, a
diskstats without any counted device, a window that does not fit the check's timeout.

Subjects: ``link`` (the above); with sources linked to DRS (a recovery host whose ``source:``
names them has ``drs:``) also ``throttle`` (DRS's bandwidthThrottling against the write rates)
and ``backlog`` (DRS's replication backlog growing or not over the window), each its own test:
see ``pytest_drcheck/checks/replication_service.py``. The link and throttle subjects, run side
by side, share one reading of the sources' counters.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

from pytest_drcheck.checks.base import Check, CheckContext, ExpansionError, Subject
from pytest_drcheck.checks.replication_service import (
    BacklogGrowth,
    ThrottleLoad,
    judge_backlog,
    judge_throttle,
    observe_backlog,
    read_throttles,
)
from pytest_drcheck.durations import parse_duration
from pytest_drcheck.inflight import InFlight
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import CouldNotObserve, Observation, PlanItem
from pytest_drcheck.sizing import DEFAULT_HEADROOM, mbit_per_s, parse_bandwidth
from pytest_drcheck.targets.base import TargetError
from pytest_drcheck.targets.readonly import DISKSTATS_READ, diskstats_sampler

SECTOR_BYTES = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own size
SAMPLE_INTERVAL_S = 1.0
DEFAULT_WINDOW_S = 10.0
MAX_WINDOW_S = 300.0
WHOLE_DISK = re.compile(r"\A(?:[shv]d[a-z]+|xvd[a-z]+|nvme[0-9]+n[0-9]+)\Z")
# Time for the sampler's session to start and its output to come back, beyond the window.
_SLACK_S = 5.0


@dataclass(frozen=True)
class Reading:
    uptime_s: float
    sectors_written: dict[str, int]


def parse_readings(text: str) -> list[Reading]:
    """The readings of ``diskstats_sampler`` (or one ``DISKSTATS_READ``): each is /proc/uptime
    then /proc/diskstats, ended by '---' (a single read has no marker)."""
    readings: list[Reading] = []
    for block in text.split("---\n"):
        lines = [line.split() for line in block.strip().splitlines() if line.strip()]
        if not lines:
            continue
        try:
            uptime = float(lines[0][0])
        except (ValueError, IndexError):
            continue
        sectors = {}
        for fields in lines[1:]:
            if len(fields) >= 10 and fields[9].isdigit():
                sectors[fields[2]] = int(fields[9])
        readings.append(Reading(uptime, sectors))
    return readings


@dataclass(frozen=True)
class WriteRate:
    source: str
    average_bps: float
    # The busiest sample interval; None from counters since boot.
    peak_bps: float | None
    devices: tuple[str, ...]
    # "over 10 s" or "since boot (3 d 4 h)".
    basis: str


def write_rate(source: str, readings: Sequence[Reading], devices: Sequence[str]) -> WriteRate:
    """Average (and peak) bytes written per second to the counted devices."""
    if not readings:
        raise CouldNotObserve(f"{source}'s /proc/diskstats could not be read (no reading)")
    counted = tuple(sorted(
        name for name in readings[0].sectors_written
        if (any(fnmatch.fnmatchcase(name, d) for d in devices) if devices
            else WHOLE_DISK.match(name))))
    if not counted:
        wanted = ", ".join(devices) if devices else "whole disks (sd*, vd*, xvd*, nvme*n*)"
        present = ", ".join(sorted(readings[0].sectors_written)[:8]) or "none"
        raise CouldNotObserve(f"{source} has none of {wanted} in /proc/diskstats (it lists "
                              f"{present}); name the devices with devices:")

    def total(reading: Reading) -> int:
        return sum(reading.sectors_written.get(name, 0) for name in counted) * SECTOR_BYTES

    if len(readings) == 1:
        uptime = readings[0].uptime_s
        if uptime <= 0:
            raise CouldNotObserve(f"{source}'s /proc/uptime is {uptime}")
        return WriteRate(source, total(readings[0]) / uptime, None, counted,
                         f"since boot ({uptime / 3600:.1f} h)")
    rates = []
    for before, after in itertools.pairwise(readings):
        elapsed = after.uptime_s - before.uptime_s
        if elapsed > 0:
            rates.append(max(0, total(after) - total(before)) / elapsed)
    elapsed = readings[-1].uptime_s - readings[0].uptime_s
    if elapsed <= 0 or not rates:
        raise CouldNotObserve(f"{source}'s readings span no time (uptime did not advance)")
    average = max(0, total(readings[-1]) - total(readings[0])) / elapsed
    return WriteRate(source, average, max(rates), counted, f"over {elapsed:.1f} s")


@dataclass(frozen=True)
class ReplicationParams:
    sources: tuple[str, ...]
    link_mbit: float
    window_s: float | None  # None: since boot
    devices: tuple[str, ...]
    headroom: float
    # Source -> its recovery hosts found through the replication service (throttle subject).
    linked_by: Mapping[str, Sequence[str]]

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> ReplicationParams:
        return cls(tuple(params["sources"]), params["link_mbit"], params["window_s"],
                   tuple(params["devices"]), params["headroom"], params.get("linked_by", {}))


@dataclass(frozen=True)
class LinkLoad:
    rates: tuple[WriteRate, ...]

    @property
    def average_mbit(self) -> float:
        return mbit_per_s(sum(r.average_bps for r in self.rates))

    @property
    def peak_mbit(self) -> float | None:
        """The sum of each source's peak: the worst case of them peaking together."""
        peaks = [r.peak_bps for r in self.rates]
        return None if any(p is None for p in peaks) else mbit_per_s(sum(
            p for p in peaks if p is not None))


def _basis(rates: Sequence[WriteRate], window_s: float | None) -> str:
    if len(rates) == 1:
        return rates[0].basis
    return "since boot" if window_s is None else f"over {window_s:g} s"


# Identical measurements running at the same time share one: an entry's link and throttle
# subjects, run side by side, read the sources' counters once per window.
_MEASUREMENTS: InFlight[LinkLoad] = InFlight()
Value = LinkLoad | ThrottleLoad | BacklogGrowth


class ReplicationCheck(Check[Value]):
    type_name: ClassVar[str] = "replication"
    default_timeout: ClassVar[float] = 30.0
    wants_host_context: ClassVar[bool] = True
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "required": ["link"],
        "properties": {
            "link": {"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                               {"type": "string", "maxLength": 32}],
                     "x-expect": "the replication link's bandwidth, e.g. 100Mbit/s"},
            "sources": {"type": "array", "items": vocabulary.NAME, "uniqueItems": True,
                        "minItems": 1},
            "window": {"anyOf": [{"const": "boot"}, vocabulary.TIMEOUT],
                       "x-expect": "a duration such as 10s, or boot (counters since boot)"},
            "devices": {"type": "array", "uniqueItems": True, "minItems": 1,
                        "items": {"type": "string", "pattern": r"\A[A-Za-z0-9_.:*?\[\]-]{1,64}\Z"}},
            "headroom": {"type": "number", "minimum": 1, "maximum": 10},
        },
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        context = entry.get("host_context") or {}
        try:
            link = parse_bandwidth(entry["link"])
        except ValueError as exc:
            raise ExpansionError(str(exc), ".link") from None
        window: float | None = DEFAULT_WINDOW_S
        if entry.get("window") == "boot":
            window = None
        elif "window" in entry:
            window = parse_duration(entry["window"])
            if not SAMPLE_INTERVAL_S <= window <= MAX_WINDOW_S:
                raise ExpansionError(f"the window must be 1s to {MAX_WINDOW_S:.0f}s (or boot)",
                                     ".window")
        sources = list(entry.get("sources") or context.get("sources") or [])
        if not sources:
            raise ExpansionError("no source servers to measure: describe them with source: "
                                 "on the recovery hosts, or list them in sources:")
        link_params = {"sources": sources, "link_mbit": link, "window_s": window,
                       "devices": list(entry.get("devices", [])),
                       "headroom": float(entry.get("headroom", DEFAULT_HEADROOM))}
        subjects = [Subject("link", link_params)]
        linked_by = {s: list(context.get("linked_by", {}).get(s, [])) for s in sources}
        if any(linked_by.values()):
            subjects.append(Subject("throttle", {**link_params, "linked_by": linked_by}))
            subjects.append(Subject("backlog", {
                "sources": sources, "linked_by": linked_by,
                "window_s": DEFAULT_WINDOW_S if window is None else window}))
        return subjects

    def needs_connection(self, item: PlanItem) -> bool:
        # The backlog is read from the service by the runner alone.
        return item.subject != "backlog"

    def expected(self, item: PlanItem) -> str:
        if item.subject == "backlog":
            return (f"the replication backlog not growing over {item.params['window_s']:g} s")
        if item.subject == "throttle":
            return "each source's average write rate within its replication throttle"
        link = ReplicationParams.of(item.params).link_mbit
        return f"sources' total average write rate at most the link's {link:g} Mbit/s"

    def observe(self, ctx: CheckContext) -> Value:
        if ctx.item.subject == "backlog":
            return observe_backlog(ctx, tuple(ctx.params["sources"]), ctx.params["linked_by"],
                                   ctx.params["window_s"], _SLACK_S)
        params = ReplicationParams.of(ctx.params)
        if ctx.item.subject == "throttle":
            return self._throttle(ctx, params)
        return self._load(ctx, params)

    def _throttle(self, ctx: CheckContext, params: ReplicationParams) -> ThrottleLoad:
        """The throttles (from the service) and the write rates (the sources' counters),
        read side by side; what could not be read, of either, is named."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            reading = pool.submit(read_throttles, ctx, params.sources, params.linked_by,
                                  max(1.0, ctx.timeout - 1))
            causes: list[str] = []
            load: LinkLoad | None = None
            try:
                load = self._load(ctx, params)
            except CouldNotObserve as exc:
                causes.append(str(exc))
            try:
                throttles = reading.result()
            except CouldNotObserve as exc:
                causes.insert(0, str(exc))
        if causes or load is None:
            raise CouldNotObserve("; ".join(causes))
        return ThrottleLoad({r.source: r.average_bps for r in load.rates},
                            _basis(load.rates, params.window_s), throttles)

    def _load(self, ctx: CheckContext, params: ReplicationParams) -> LinkLoad:
        if params.window_s is None:
            command, timeout = DISKSTATS_READ, max(1.0, ctx.timeout - 1)
        else:
            samples = round(params.window_s / SAMPLE_INTERVAL_S) + 1
            command = diskstats_sampler(samples, SAMPLE_INTERVAL_S)
            timeout = params.window_s + _SLACK_S
            if timeout > ctx.timeout:
                raise CouldNotObserve(
                    f"a {params.window_s:g} s window does not fit in the check's "
                    f"{ctx.timeout:g} s timeout; raise timeout: or shorten window:")

        def measure() -> LinkLoad:
            with ThreadPoolExecutor(max_workers=min(16, len(params.sources))) as pool:
                futures = [pool.submit(self._measure, ctx, source, command, timeout,
                                       params.devices) for source in params.sources]
                return LinkLoad(tuple(future.result() for future in futures))

        key = (ctx.target_of, params.sources, command, params.devices)
        try:
            return _MEASUREMENTS.share(key, measure, ctx.timeout)
        except TimeoutError:
            raise CouldNotObserve(f"the sources' disk counters were not read within "
                                  f"{ctx.timeout:g} s (the check's timeout)") from None

    @staticmethod
    def _measure(ctx: CheckContext, source: str, command: str, timeout: float,
                 devices: Sequence[str]) -> WriteRate:
        try:
            target = ctx.target_of(source)
        except KeyError:
            raise CouldNotObserve(f"source '{source}' is not a host of this inventory"
                                  ) from None
        started = time.monotonic()
        try:
            target.connect()
            result = target.run(command, max(1.0, timeout - (time.monotonic() - started)))
        except TargetError as exc:
            raise CouldNotObserve(f"cannot read source {source}'s disk counters: {exc}"
                                  ) from None
        result.on(source, timeout).require()
        return write_rate(source, parse_readings(result.stdout), devices)

    def judge(self, item: PlanItem, value: Value) -> Observation:
        if isinstance(value, BacklogGrowth):
            return judge_backlog(self.expected(item), value)
        params = ReplicationParams.of(item.params)
        if isinstance(value, ThrottleLoad):
            return judge_throttle(self.expected(item), value, params.headroom)
        average, peak = value.average_mbit, value.peak_mbit
        basis = _basis(value.rates, params.window_s)
        per_source = ", ".join(
            f"{r.source} {mbit_per_s(r.average_bps):.2f}"
            + (f" (peak {mbit_per_s(r.peak_bps):.2f})" if r.peak_bps is not None else "")
            for r in value.rates)
        needed = average * params.headroom
        observed = (f"writes {average:.2f} Mbit/s on average {basis}"
                    + (f", {peak:.2f} Mbit/s at peak" if peak is not None else "")
                    + f" across {len(value.rates)} source(s) ({per_source}) against a "
                    f"{params.link_mbit:g} Mbit/s link; with headroom x{params.headroom:g} "
                    f"it needs {needed:.2f} Mbit/s")
        details = {
            "average_mbit_s": round(average, 4),
            "peak_mbit_s": None if peak is None else round(peak, 4),
            "link_mbit_s": params.link_mbit, "headroom": params.headroom,
            "basis": "boot" if params.window_s is None else f"window {params.window_s:g} s",
            "sources": {r.source: {"average_bytes_s": round(r.average_bps, 1),
                                   "peak_bytes_s": (None if r.peak_bps is None
                                                    else round(r.peak_bps, 1)),
                                   "devices": list(r.devices)} for r in value.rates},
        }
        if average <= params.link_mbit:
            return Observation.passed(self.expected(item), observed, **details)
        return Observation.failed(self.expected(item), observed, (
            f"the link is too small: sources write {average:.2f} Mbit/s on average {basis}, "
            f"the link carries {params.link_mbit:g} Mbit/s; replication lags and the RPO "
            "grows"), **details)
