"""rpo: the data a drill would have lost, measured on the recovery instance itself.

The source server rewrites a beacon (``pytest_drcheck/beacon.py``: the UTC time) every few
seconds; replication carries it across with everything else. On the recovery instance the
check reads the newest beacon it holds, and

    measured RPO = recovery point - (beacon time - source clock offset)

The recovery point is DRS's point-in-time snapshot when the target knows it, else the drill's
launch time (``recoverypoint.py``). A live standby that keeps receiving replication
(``recovery_point: now``) has none: its beacon is read by the check itself, and the moment of
that read is the recovery point (what a failure right now would lose).

The beacon was written by the *source's* clock: its offset from the runner's is measured over
the source's read-only connection (the clock sampler of ``net/clockoffset.py``) and taken
out, with its uncertainty. A host without ``source:`` has its beacon taken as written, and the
verdict says so.

Could not observe (an error naming the cause, never a pass): no beacon, a beacon that is not a
time, no recovery point, a source clock that cannot be read, a beacon newer than the recovery
point (a clock or the recovery point is wrong), or a figure too close to the target to tell.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar

from pytest_drcheck import beacon
from pytest_drcheck.checks.base import Check, CheckContext, ExpansionError, Subject
from pytest_drcheck.durations import parse_duration
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import CouldNotObserve, Observation, PlanItem
from pytest_drcheck.net import clockoffset
from pytest_drcheck.recoverypoint import KnowsRecoveryPoint, RecoveryPoint
from pytest_drcheck.targets.base import CommandResult, StreamError, Target, TargetError

# Samples of the source's clock: enough for one short round trip among them.
CLOCK_SAMPLES = 8
# A beacon newer than the recovery point by less than this (plus the clock's uncertainty) is
# rounding, and reads as 0; by more, a clock or the recovery point is wrong.
NEWER_TOLERANCE_S = 1.0
# `cat` of a missing file exits 1: observed (no beacon), not a failed command.
_READ_STATUSES = (0, 1)


def format_rpo(seconds: float) -> str:
    """3 min 12 s, 45.2 s, 2 h 5 min: how auditors read a data-loss window."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(whole, 3600)
    minutes = rest // 60
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


@dataclass(frozen=True)
class RpoParams:
    path: str
    target_s: float
    source: str | None
    live: bool = False

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> RpoParams:
        return cls(params["beacon"], params["max_s"], params.get("source"),
                   bool(params.get("live")))


def _read_command(path: str) -> str:
    return f"cat -- {shlex.quote(path)}"


@dataclass(frozen=True)
class MeasuredRpo:
    rpo_s: float
    uncertainty_s: float
    recovery_point: RecoveryPoint
    beacon_at: datetime
    # The source's clock minus the runner's; None where no source is described.
    clock_offset_s: float | None
    source: str | None


class RpoCheck(Check[MeasuredRpo]):
    type_name: ClassVar[str] = "rpo"
    default_timeout: ClassVar[float] = 20.0
    # The loader adds the host's source and the drill's RPO to each entry (host_context).
    wants_host_context: ClassVar[bool] = True
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "beacon": {"type": "string", "pattern": r"\A/[^\0\n]{0,1023}\Z",
                       "x-expect": "the beacon file's absolute path"},
            # Overrides drill.rpo for this host.
            "max": vocabulary.OBJECTIVE,
            # drill: the recovery instance holds a point in time (DRS, --dr-launched-at);
            # now: a live standby that keeps receiving replication, whose recovery point is
            # the moment the beacon is read ("what a failure right now would lose").
            "recovery_point": {"enum": ["drill", "now"]},
        },
    }

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        context = entry.get("host_context") or {}
        if "max" in entry:
            try:
                target = parse_duration(entry["max"])
            except ValueError as exc:
                raise ExpansionError(str(exc), ".max") from None
        elif context.get("drill_rpo_s") is not None:
            target = float(context["drill_rpo_s"])
        else:
            raise ExpansionError("no RPO to compare with; set drill.rpo (e.g. 15m) or max: "
                                 "on the entry")
        if target <= 0:
            raise ExpansionError("the RPO target must be more than 0", ".max")
        path = entry.get("beacon", beacon.DEFAULT_PATH)
        return [Subject(path, {"beacon": path, "max_s": target,
                               "source": context.get("source"),
                               "live": entry.get("recovery_point") == "now"})]

    def commands(self, item: PlanItem) -> Sequence[str]:
        params = RpoParams.of(item.params)
        # A live standby's beacon is read by observe itself, timed: the read is the point.
        return () if params.live else (_read_command(params.path),)

    def expected(self, item: PlanItem) -> str:
        return f"RPO at most {format_rpo(RpoParams.of(item.params).target_s)}"

    # --- observe ---------------------------------------------------------------------------

    def observe(self, ctx: CheckContext) -> MeasuredRpo:
        params = RpoParams.of(ctx.params)
        deadline = time.monotonic() + max(1.0, ctx.timeout - 0.5)
        read_uncertainty = 0.0
        if params.live:
            read, point, read_uncertainty = _timed_read(ctx, params.path, deadline)
        else:
            read = ctx.output(0, accept=_READ_STATUSES)
        if read.exit_status != 0:
            said = " ".join(read.stderr.split())[:120] or "exit 1"
            raise CouldNotObserve(f"no replicated beacon at {params.path} on {ctx.item.host} "
                                  f"({said}); is the beacon written on the source "
                                  "(drcheck beacon install) and replicated?")
        try:
            beacon_at = beacon.parse_beacon(read.stdout)
        except beacon.BeaconError as exc:
            raise CouldNotObserve(f"{params.path} on {ctx.item.host}: {exc}") from None
        if not params.live:
            point = self._recovery_point(ctx, deadline)
        offset, uncertainty = None, read_uncertainty
        if params.source is not None:
            measured = _source_clock(ctx, params.source, deadline)
            offset, uncertainty = measured.offset, measured.uncertainty + read_uncertainty
        written_at = beacon_at.timestamp() - (offset or 0.0)
        rpo = point.at.timestamp() - written_at
        if rpo < -(NEWER_TOLERANCE_S + uncertainty):
            raise CouldNotObserve(
                f"the beacon ({beacon_at.isoformat()}) is {format_rpo(-rpo)} newer than the "
                f"recovery point ({point.at.isoformat()}, {point.source}): the recovery point "
                "or a clock is wrong")
        value = MeasuredRpo(max(0.0, rpo), uncertainty, point, beacon_at, offset,
                            params.source)
        low, high = value.rpo_s - uncertainty, value.rpo_s + uncertainty
        if low <= params.target_s < high:
            raise CouldNotObserve(
                f"cannot tell whether the RPO is within {format_rpo(params.target_s)}: "
                f"measured {format_rpo(value.rpo_s)} \u00b1{uncertainty:.3f} s (the source "
                "clock's uncertainty)")
        return value

    @staticmethod
    def _recovery_point(ctx: CheckContext, deadline: float) -> RecoveryPoint:
        if isinstance(ctx.target, KnowsRecoveryPoint):
            try:
                known = ctx.target.recovery_point(max(0.5, deadline - time.monotonic()))
            except TargetError as exc:
                raise CouldNotObserve(f"cannot read {ctx.item.host}'s recovery point: {exc}"
                                      ) from None
            if known is not None:
                return known
        launch = ctx.drill_launch
        if launch is None:
            raise CouldNotObserve(
                f"no recovery point for {ctx.item.host}: no DRS point in time and no launch "
                "time; pass --dr-launched-at (when the recovery instances were launched)")
        return launch

    # --- judge -----------------------------------------------------------------------------

    def judge(self, item: PlanItem, value: MeasuredRpo) -> Observation:
        params = RpoParams.of(item.params)
        expected = self.expected(item)
        clock = ("source clock not measured (no source: on the host)"
                 if value.clock_offset_s is None else
                 f"{value.source}'s clock {_signed(value.clock_offset_s)} "
                 f"\u00b1{value.uncertainty_s:.3f} s, taken out")
        observed = (f"RPO measured {format_rpo(value.rpo_s)} against a target of "
                    f"{format_rpo(params.target_s)} (newest beacon "
                    f"{value.beacon_at.isoformat(timespec='seconds')}, recovery point "
                    f"{value.recovery_point.at.isoformat(timespec='seconds')} from "
                    f"{value.recovery_point.source}; {clock})")
        details = {
            "rpo_s": round(value.rpo_s, 3), "rpo_target_s": params.target_s,
            "uncertainty_s": round(value.uncertainty_s, 6),
            "beacon_at": value.beacon_at.isoformat(),
            "recovery_point": value.recovery_point.at.isoformat(),
            "recovery_point_source": value.recovery_point.source,
            "clock_offset_s": (None if value.clock_offset_s is None
                               else round(value.clock_offset_s, 6)),
            "source": value.source,
        }
        if value.rpo_s <= params.target_s:
            return Observation.passed(expected, observed, **details)
        return Observation.failed(expected, observed, observed, **details)


def _timed_read(ctx: CheckContext, path: str, deadline: float
                ) -> tuple[CommandResult, RecoveryPoint, float]:
    """The beacon read now, and when: the midpoint of the read's round trip (NTP's rule),
    give or take half of it."""
    command = _read_command(path)
    sent = time.time()
    try:
        result = ctx.target.run(command, max(0.5, deadline - time.monotonic()))
    except TargetError as exc:
        raise CouldNotObserve(f"cannot read {path} on {ctx.item.host}: {exc}") from None
    received = time.time()
    result = result.on(ctx.item.host, ctx.command_timeout).require(_READ_STATUSES)
    moment = datetime.fromtimestamp((sent + received) / 2, timezone.utc)
    point = RecoveryPoint(moment, "the moment the beacon was read (a live standby)")
    return result, point, (received - sent) / 2


def _signed(seconds: float) -> str:
    return f"{'+' if seconds >= 0 else '-'}{abs(seconds):.3f} s"


def _source_clock(ctx: CheckContext, source: str, deadline: float) -> clockoffset.ClockOffset:
    """The source's clock minus the runner's, over the source's own (read-only) connection."""
    try:
        target = ctx.target_of(source)
        target.connect()
    except KeyError:
        raise CouldNotObserve(f"source '{source}' is not a host of this inventory") from None
    except TargetError as exc:
        raise CouldNotObserve(f"cannot reach source {source} to measure its clock: {exc}"
                              ) from None

    def enough(samples: Sequence[clockoffset.ClockSample]) -> bool:
        return len(samples) >= CLOCK_SAMPLES

    try:
        stream = target.open_process(clockoffset.SAMPLER_COMMAND,
                                     max(0.1, deadline - time.monotonic()))
    except NotImplementedError:
        return _by_commands(target, source, deadline)
    except (StreamError, TargetError) as exc:
        raise CouldNotObserve(f"cannot start a clock sampler on source {source}: {exc}"
                              ) from None
    try:
        samples = clockoffset.sample_stream(stream, deadline, enough)
    except clockoffset.SamplerError as exc:
        raise CouldNotObserve(f"cannot sample source {source}'s clock: {exc}") from None
    finally:
        stream.close()
    return clockoffset.best_of(samples)


def _by_commands(target: Target, source: str, deadline: float) -> clockoffset.ClockOffset:
    def run(command: str, timeout: float) -> tuple[int, str, str, bool]:
        result = target.run(command, timeout)
        return result.exit_status, result.stdout, result.stderr, result.timed_out

    try:
        samples = clockoffset.sample_commands(run, 3, deadline)
    except (clockoffset.SamplerError, TargetError) as exc:
        raise CouldNotObserve(f"cannot sample source {source}'s clock: {exc}") from None
    return clockoffset.best_of(samples)
