"""time: the instance's clock, measured, and what its time daemon says, with a threshold.

Kerberos refuses clients more than 5 minutes off the DC (by default), and log correlation,
TLS and token lifetimes break long before. Three results per instance:

- ``offset``: the instance's clock against a reference, *measured* NTP-style
  (``net/clockoffset.py``): sampled many times over one channel kept open, each reading
  against the midpoint of its round trip, the sample with the shortest round trip kept (half
  of it is the uncertainty). When the uncertainty leaves the verdict open, the offset could
  not be observed ("cannot tell", with the round trip): never a failed clock. The reference
  is the runner's clock, or an NTP server the runner asks (``reference: ntp:HOST``).
- ``sync``: the time daemon (chrony, systemd-timesyncd or ntpd, found on the instance) has a
  selected source and puts the clock within the threshold of it.
- ``source``: the selected source is one of the expected ones (e.g. Amazon Time Sync
  169.254.169.123, or the on-prem NTP servers), compared by address: expected names are
  resolved on the instance; one that does not resolve there cannot be compared (an error,
  not a wrong source).

A daemon command that timed out, or a lookup that did, is "could not observe", never data.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest_drcheck.net.clockoffset as clockoffset
import pytest_drcheck.net.sntp as sntp
from pytest_drcheck.checks.base import Check, CheckContext, ExpansionError, Subject
from pytest_drcheck.durations import parse_duration
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import CouldNotObserve, Observation, PlanItem
from pytest_drcheck.targets.base import CommandResult, StreamError, Target

DEFAULT_MAX_OFFSET = 1.0
DAEMONS = ("chrony", "timesyncd", "ntpd")
RUNNER = "runner"
# Separates the two parts of one daemon's output.
_SPLIT = "--drcheck--"
DAEMON_COMMANDS: Mapping[str, str] = {
    "chrony": f"chronyc -n -c tracking && echo {_SPLIT} && chronyc -n -c sources",
    "timesyncd": f"timedatectl show && echo {_SPLIT} && timedatectl timesync-status",
    "ntpd": "ntpq -pn",
}
# chrony's reference IDs that are not a network source.
_CHRONY_NO_SOURCE = {"00000000", "7F7F0101"}
_REFERENCE = re.compile(r"\A(runner|ntp:(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+)"
                        r"(:(?P<port>\d{1,5}))?)\Z")
_DURATION = vocabulary.duration(example="500ms, 1s or 2m")
_SETTINGS = {
    "max_offset": _DURATION,
    "sources": {"type": "array", "minItems": 1, "uniqueItems": True,
                "items": vocabulary.HOST_ADDRESS,
                "x-expect": "a list of NTP servers (addresses or names), e.g. "
                            "[169.254.169.123]"},
    "reference": {"type": "string", "pattern": _REFERENCE.pattern,
                  "x-expect": "runner, or ntp:HOST[:PORT] (an NTP server the runner asks)"},
    "daemon": {"enum": ["auto", *DAEMONS]},
}


@dataclass(frozen=True)
class DaemonView:
    """What one time daemon reports. ``offset``: the system clock minus its source, seconds."""

    daemon: str
    synchronised: bool
    source: str | None = None
    stratum: int | None = None
    offset: float | None = None
    problem: str | None = None


def format_offset(seconds: float) -> str:
    """'+0.004 s', '-120 s', '+2.4 us': signed, readable at every scale."""
    sign = "+" if seconds >= 0 else "-"
    size = abs(seconds)
    if size >= 1:
        text = f"{size:.3f}".rstrip("0").rstrip(".") + " s"
    elif size >= 1e-3:
        text = f"{size * 1e3:.1f}".rstrip("0").rstrip(".") + " ms"
    else:
        text = f"{size * 1e6:.1f}".rstrip("0").rstrip(".") + " us"
    return sign + text


def _fast_or_slow(offset: float) -> str:
    return f"{format_offset(abs(offset))[1:]} {'fast' if offset >= 0 else 'slow'}"


# --- what the daemons print ------------------------------------------------------------------


def parse_chrony(output: str) -> DaemonView:
    """``chronyc -n -c tracking`` then ``chronyc -n -c sources`` (CSV)."""
    tracking, _, sources = output.partition(_SPLIT)
    fields = next((line.split(",") for line in tracking.splitlines()
                   if line.count(",") >= 13), None)
    if fields is None:
        return DaemonView("chrony", False, problem="chronyc printed no tracking data")
    refid, name, stratum = fields[0].upper(), fields[1], int(fields[2] or 0)
    # "System time": how far chronyd still has to correct the clock; positive = slow.
    offset = -float(fields[4])
    leap = fields[13].strip()
    selected = None
    candidates: list[str] = []
    for line in sources.splitlines():
        parts = line.split(",")
        if len(parts) < 6 or parts[0] not in ("^", "=", "#"):
            continue
        # The reach register holds the last 8 polls: 0 is "none of them answered", whether
        # the source never did or stopped.
        reach = f"reach {parts[5]}" if parts[5] != "0" else "not answering"
        candidates.append(f"{parts[2]} ({reach})")
        if parts[1] == "*":
            selected = parts[2]
    if leap == "Not synchronised" or refid in _CHRONY_NO_SOURCE or selected is None:
        if refid == "7F7F0101":
            why = "chrony serves its own local clock, no network source"
        elif candidates:
            why = f"no selectable source among {', '.join(candidates)}"
        else:
            why = "no sources configured"
        return DaemonView("chrony", False, problem=f"not synchronised ({why})")
    return DaemonView("chrony", True, selected or name, stratum, offset)


_TIMESYNCD_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0,
                    "min": 60.0}


def _timesyncd_seconds(text: str) -> float | None:
    match = re.match(r"^([+-]?\d+(?:\.\d+)?)(ns|us|\u00b5s|ms|s|min)$", text.strip())
    return float(match.group(1)) * _TIMESYNCD_UNITS[match.group(2)] if match else None


def parse_timesyncd(output: str) -> DaemonView:
    """``timedatectl show`` then ``timedatectl timesync-status``."""
    show, _, status = output.partition(_SPLIT)
    props = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
    fields: dict[str, str] = {}
    for line in status.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    server = fields.get("Server", "").split(" ")[0] or None
    if props.get("NTP") == "no":
        return DaemonView("timesyncd", False, problem="NTP is switched off (timedatectl "
                                                      "set-ntp false)")
    if props.get("NTPSynchronized") != "yes":
        where = f" (server {server})" if server else ""
        return DaemonView("timesyncd", False, server, problem=f"not synchronised{where}")
    offset = _timesyncd_seconds(fields.get("Offset", ""))
    stratum = int(fields["Stratum"]) if fields.get("Stratum", "").isdigit() else None
    # timesyncd's Offset is the server minus the local clock.
    return DaemonView("timesyncd", True, server, stratum,
                      -offset if offset is not None else None)


def parse_ntpq(output: str) -> DaemonView:
    """``ntpq -pn`` (ntpd or ntpsec): '*' marks the system peer; offsets in milliseconds."""
    peers = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) < 10 or parts[0] == "remote" or line.lstrip().startswith("="):
            continue
        # Column 0 is the tally code (' ' none, '*' system peer, '+' candidate, ...).
        tally = " " if parts[0][0].isalnum() else parts[0][0]
        address = parts[0] if tally == " " else parts[0][1:]
        peers.append(address)
        if tally == "*":
            try:
                stratum = int(parts[2])
                offset_ms = float(parts[8])
            except ValueError:
                return DaemonView("ntpd", True, address)
            # ntpq's offset is the peer's clock minus ours.
            return DaemonView("ntpd", True, address, stratum, -offset_ms / 1000.0)
    why = f"no system peer among {', '.join(peers)}" if peers else "no peers configured"
    return DaemonView("ntpd", False, problem=f"not synchronised ({why})")


_PARSERS = {"chrony": parse_chrony, "timesyncd": parse_timesyncd, "ntpd": parse_ntpq}
_MISSING = 127
# A daemon's tool that is missing (127) or fails (chronyc's 1: "Cannot talk to daemon") says
# something about that daemon; a timed-out or lost command says nothing (ctx.output raises).
DAEMON_STATUSES = frozenset(range(-1, 256)) - {124, 125}
# getent: 0 found, 2 not found (which includes a resolver that failed: getent cannot tell).
LOOKUP_STATUSES = (0, 2)


@dataclass(frozen=True)
class DaemonState:
    """The first daemon that answered (None: none did), and why each one before it did not."""

    view: DaemonView | None
    reasons: tuple[str, ...] = ()

    @property
    def why_none(self) -> str:
        return "; ".join(self.reasons)


def _parser(daemon: str) -> Callable[[str], DaemonView]:
    if daemon == "w32time":  # Windows hosts (checks/windows/timesync.py)
        from pytest_drcheck.checks.windows import timesync as windows

        return windows.parse_w32tm
    return _PARSERS[daemon]


def daemon_state(daemons: Sequence[str], read: Callable[[int], CommandResult]) -> DaemonState:
    """Reads the daemons' outputs in order (``read(index)``) and stops at the first that
    answered: a later daemon's output is never needed, so it can never spoil the verdict."""
    reasons = []
    for index, daemon in enumerate(daemons):
        result = read(index)
        if result.exit_status == _MISSING:
            reasons.append(f"{daemon}: not installed")
            continue
        if result.exit_status != 0:
            lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
            message = lines[0].strip() if lines else f"exit {result.exit_status}"
            reasons.append(f"{daemon}: {message[:100]}")
            continue
        return DaemonState(_parser(daemon)(result.stdout), tuple(reasons))
    return DaemonState(None, tuple(reasons))


# --- typed params and values -------------------------------------------------------------------


@dataclass(frozen=True)
class TimeParams:
    prop: str
    max_offset: float
    daemons: tuple[str, ...]
    reference: str = RUNNER
    # (host, port) of the NTP server the runner asks, when it is the reference.
    ntp: tuple[str, int] | None = None
    sources: tuple[str, ...] = ()

    @classmethod
    def of(cls, item: PlanItem) -> TimeParams:
        params = item.params
        ntp = params.get("ntp")
        # Windows has one time service, whatever the entry's daemon list says.
        daemons = ("w32time",) if item.platform == "windows" else tuple(params["daemons"])
        return cls(params["property"], float(params["max_offset"]), daemons,
                   params.get("reference", RUNNER),
                   (str(ntp[0]), int(ntp[1])) if ntp is not None else None,
                   tuple(params.get("sources", ())))

    @property
    def reference_words(self) -> str:
        if self.ntp is None:
            return "the runner's clock"
        host, port = self.ntp
        return f"NTP server {host}" + (f":{port}" if port != 123 else "")


@dataclass(frozen=True)
class OffsetValue:
    """The instance's clock minus the reference, with its uncertainty (half the best round
    trip, plus the reference's own when it is an NTP server)."""

    offset: float
    uncertainty: float
    round_trip: float
    samples: int
    # The runner's clock minus the reference NTP server's (None: the runner is the reference).
    runner_offset: float | None = None


@dataclass(frozen=True)
class SourceValue:
    state: DaemonState
    # Expected source addresses, each with the name (or address) it was written as.
    addresses: Mapping[str, str]


TimeValue = OffsetValue | DaemonState | SourceValue


def decided(offset: float, uncertainty: float, limit: float) -> bool:
    """Whether a measurement says for sure that the clock is within the limit or is not."""
    return abs(offset) + uncertainty <= limit or abs(offset) - uncertainty > limit


def _address(text: str) -> str:
    """The canonical form of an IP address (so fd00::0030 equals fd00::30); text otherwise."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def lookup_command(name: str) -> str:
    return f"getent ahosts {shlex.quote(name)}"


def parse_ahosts(stdout: str) -> list[str]:
    """Addresses from ``getent ahosts`` (one line per address and socket type)."""
    found: dict[str, None] = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts:
            found.setdefault(_address(parts[0]))
    return list(found)


# Samples before an estimate may stand; more are taken while it cannot decide the verdict.
MIN_SAMPLES = 16


class TimeCheck(Check[TimeValue]):
    type_name: ClassVar[str] = "time"
    site_key: ClassVar[str | None] = "time"
    default_timeout: ClassVar[float] = 15.0
    entry_schema: ClassVar[Mapping[str, Any]] = {"properties": dict(_SETTINGS)}
    site_schema: ClassVar[Mapping[str, Any] | None] = {
        "type": "object", "additionalProperties": False, "properties": dict(_SETTINGS)}

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        time_site: Mapping[str, Any] = site.get("time", {})
        merged = {**time_site, **entry}
        in_site = () if "max_offset" in entry else ("time", "max_offset")
        try:
            max_offset = parse_duration(merged.get("max_offset", DEFAULT_MAX_OFFSET))
        except ValueError as exc:
            raise ExpansionError(str(exc), ".max_offset", in_site) from None
        if max_offset <= 0:
            raise ExpansionError("max_offset must be more than 0; raise it", ".max_offset",
                                 in_site)
        if max_offset >= 300:
            raise ExpansionError(f"max_offset {merged['max_offset']} is not under Kerberos' "
                                 "5 minutes; a threshold must be well below it",
                                 ".max_offset", in_site)
        reference = _REFERENCE.match(merged.get("reference", RUNNER))
        assert reference is not None  # the schema's pattern guarantees it
        ntp = None
        if reference.group("host"):
            port = int(reference.group("port") or 123)
            if not 0 < port < 65536:
                raise ExpansionError("the reference's port must be 1-65535", ".reference")
            ntp = [reference.group("host").strip("[]"), port]
        daemon = merged.get("daemon", "auto")
        common = {"max_offset": max_offset, "daemons": list(
            DAEMONS if daemon == "auto" else (daemon,))}
        subjects = [Subject("offset", dict(common, property="offset",
                                           reference=merged.get("reference", RUNNER),
                                           ntp=ntp)),
                    Subject("sync", dict(common, property="sync"))]
        if "sources" in merged:
            subjects.append(Subject("source", dict(common, property="source",
                                                   sources=list(merged["sources"]))))
        return subjects

    def commands(self, item: PlanItem) -> Sequence[str]:
        params = TimeParams.of(item)
        if params.prop == "offset":
            return ()
        if item.platform == "windows":
            from pytest_drcheck.checks.windows import timesync as windows

            daemon_commands, lookup = [windows.COMMAND], windows.lookup_command
        else:
            daemon_commands, lookup = [DAEMON_COMMANDS[d] for d in params.daemons], lookup_command
        commands = daemon_commands
        if params.prop == "source":
            # The expected names are resolved by the instance, as its daemon resolved them.
            commands += [lookup(n) for n in params.sources if not _is_address(n)]
        return commands

    def expected(self, item: PlanItem) -> str:
        params = TimeParams.of(item)
        limit = format_offset(params.max_offset)[1:]
        if params.prop == "offset":
            return f"within {limit} of {params.reference_words}"
        if params.prop == "sync":
            return f"synchronised within {limit} of its source"
        return " or ".join(params.sources)

    # --- observe ---------------------------------------------------------------------------

    def observe(self, ctx: CheckContext) -> TimeValue:
        params = TimeParams.of(ctx.item)
        if params.prop == "offset":
            return self._observe_offset(ctx, params)
        state = daemon_state(params.daemons,
                             lambda index: ctx.output(index, accept=DAEMON_STATUSES))
        if params.prop == "sync":
            return state
        return self._observe_source(ctx, params, state)

    def _observe_offset(self, ctx: CheckContext, params: TimeParams) -> OffsetValue:
        deadline = time.monotonic() + max(1.0, ctx.timeout - 0.5)
        runner_offset, reference_error = None, 0.0
        if params.ntp is not None:
            host, port = params.ntp
            try:
                sample = sntp.query(host, port, min(3.0, ctx.timeout / 3))
            except sntp.SntpError as exc:
                raise CouldNotObserve(f"cannot read the reference clock: {exc}") from None
            runner_offset, reference_error = -sample.offset, sample.delay / 2

        def enough(samples: Sequence[clockoffset.ClockSample]) -> bool:
            best = clockoffset.best_of(samples)
            offset = best.offset + (runner_offset or 0.0)
            return len(samples) >= MIN_SAMPLES and decided(
                offset, best.uncertainty + reference_error, params.max_offset)

        measured = _measure(ctx.target, ctx.item.host, deadline, enough, ctx.item.platform)
        offset = measured.offset + (runner_offset or 0.0)
        uncertainty = measured.uncertainty + reference_error
        if not decided(offset, uncertainty, params.max_offset):
            raise CouldNotObserve(
                f"cannot tell whether the clock is within "
                f"{format_offset(params.max_offset)[1:]} of {params.reference_words}: "
                f"{format_offset(offset)} (\u00b1{format_offset(uncertainty)[1:]}), the "
                f"shortest round trip of {measured.samples} samples was "
                f"{format_offset(measured.round_trip)[1:]}, too long to tell at this threshold")
        return OffsetValue(offset, uncertainty, measured.round_trip, measured.samples,
                           runner_offset)

    def _observe_source(self, ctx: CheckContext, params: TimeParams,
                        state: DaemonState) -> SourceValue:
        view = state.view
        addresses = {_address(n): n for n in params.sources if _is_address(n)}
        if view is None or not view.synchronised or view.source is None:
            return SourceValue(state, addresses)
        source = _address(view.source)
        unresolved: list[str] = []
        names = [n for n in params.sources if not _is_address(n)]
        for index, name in enumerate(names, start=len(params.daemons)):
            if source in addresses:
                break
            result = ctx.output(index, accept=LOOKUP_STATUSES)
            if result.exit_status == 2:
                unresolved.append(name)
                continue
            for address in parse_ahosts(result.stdout):
                addresses.setdefault(address, name)
        if source not in addresses and unresolved:
            which = ", ".join(unresolved)
            raise CouldNotObserve(
                f"cannot compare {view.daemon}'s source {view.source} with {which}: "
                f"{'it does' if len(unresolved) == 1 else 'they do'} not resolve on "
                f"{ctx.item.host} (`getent ahosts` exit 2)")
        return SourceValue(state, addresses)

    # --- judge -----------------------------------------------------------------------------

    def judge(self, item: PlanItem, value: TimeValue) -> Observation:
        params = TimeParams.of(item)
        expected = self.expected(item)
        if isinstance(value, OffsetValue):
            return self._judge_offset(params, expected, value)
        if isinstance(value, SourceValue):
            return self._judge_source(expected, value)
        return self._judge_sync(params, expected, value)

    @staticmethod
    def _judge_offset(params: TimeParams, expected: str, value: OffsetValue) -> Observation:
        note = ""
        if value.runner_offset is not None:
            note = f"; the runner's clock is {_fast_or_slow(value.runner_offset)} of it"
        observed = (f"{format_offset(value.offset)} (\u00b1{format_offset(value.uncertainty)[1:]})"
                    f" against {params.reference_words}{note}")
        details = {"offset_seconds": round(value.offset, 6),
                   "uncertainty_seconds": round(value.uncertainty, 6),
                   "round_trip_seconds": round(value.round_trip, 6),
                   "samples": value.samples, "reference": params.reference,
                   "max_offset_seconds": params.max_offset}
        if abs(value.offset) + value.uncertainty <= params.max_offset:
            return Observation.passed(expected, observed, **details)
        return Observation.failed(expected, observed, None, **details)

    @staticmethod
    def _judge_sync(params: TimeParams, expected: str, state: DaemonState) -> Observation:
        view = state.view
        if view is None:
            return Observation.failed(expected, f"no time daemon answers ({state.why_none})")
        details = {"daemon": view.daemon, "source": view.source, "stratum": view.stratum,
                   "offset_seconds": view.offset}
        if not view.synchronised:
            return Observation.failed(expected, f"{view.daemon}: {view.problem}", None,
                                      **details)
        stratum = f" (stratum {view.stratum})" if view.stratum is not None else ""
        observed = f"{view.daemon} synchronised to {view.source}{stratum}"
        if view.offset is None:
            return Observation.passed(expected, observed, **details)
        observed += f", clock {_fast_or_slow(view.offset)} of it"
        if abs(view.offset) <= params.max_offset:
            return Observation.passed(expected, observed, **details)
        return Observation.failed(expected, observed, None, **details)

    @staticmethod
    def _judge_source(expected: str, value: SourceValue) -> Observation:
        view = value.state.view
        if view is None:
            return Observation.skipped(expected, "no source to compare: no time daemon "
                                       f"answers ({value.state.why_none})")
        if not view.synchronised or view.source is None:
            return Observation.skipped(expected, f"no selected source to compare: "
                                       f"{view.daemon} {view.problem}")
        source = _address(view.source)
        details = {"daemon": view.daemon, "source": view.source,
                   "expected_addresses": sorted(value.addresses)}
        if source in value.addresses:
            shown = value.addresses[source]
            observed = (f"{view.source} = {shown} ({view.daemon})" if shown != view.source
                        else f"{view.source} ({view.daemon})")
            return Observation.passed(expected, observed, **details)
        return Observation.failed(expected, f"{view.source} ({view.daemon})",
                                  f"expected {expected}, {view.daemon} uses {view.source}",
                                  **details)


def _measure(target: Target, host: str, deadline: float,
             enough: Callable[[Sequence[clockoffset.ClockSample]], bool],
             platform: str = "linux") -> clockoffset.ClockOffset:
    """The instance's clock minus the runner's, from one sampler channel kept open (or one
    command per sample where the target cannot keep a process open)."""
    connection = target.unwrap()
    sampler = clockoffset.SAMPLER_COMMAND
    if platform == "windows":
        from pytest_drcheck.checks.windows import timesync as windows

        sampler = windows.sampler_command()
    try:
        stream = connection.open_process(sampler, max(0.1, deadline - time.monotonic()))
    except NotImplementedError:
        return _measure_by_commands(connection, host, deadline, platform)
    except StreamError as exc:
        raise CouldNotObserve(f"cannot start a clock sampler on {host}: {exc}") from None
    try:
        samples = clockoffset.sample_stream(stream, deadline, enough)
    except clockoffset.SamplerError as exc:
        raise CouldNotObserve(f"cannot sample {host}'s clock: {exc}") from None
    finally:
        stream.close()
    return clockoffset.best_of(samples)


def _measure_by_commands(target: Target, host: str, deadline: float,
                         platform: str = "linux") -> clockoffset.ClockOffset:
    def run(command: str, timeout: float) -> tuple[int, str, str, bool]:
        if platform == "windows":
            from pytest_drcheck.checks.windows import timesync as windows

            command = windows.sample_command()
        result = target.run(command, timeout)
        return result.exit_status, result.stdout, result.stderr, result.timed_out

    try:
        samples = clockoffset.sample_commands(run, 3, deadline)
    except clockoffset.SamplerError as exc:
        raise CouldNotObserve(f"cannot sample {host}'s clock: {exc}") from None
    return clockoffset.best_of(samples)
