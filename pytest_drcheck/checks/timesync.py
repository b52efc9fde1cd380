"""time: the instance's clock, measured, and what its time daemon says, with a threshold.

Kerberos refuses clients more than 5 minutes off the DC (by default), and log correlation,
TLS and token lifetimes break long before. Three results per instance:

- ``offset``: the instance's clock against a reference, *measured*: its time is sampled over
  the connection and compared with the middle of the round trip (the half round trip is the
  uncertainty, counted against the threshold). The reference is the runner's clock, or an NTP
  server the runner asks (``reference: ntp:HOST``).
- ``sync``: the time daemon (chrony, systemd-timesyncd or ntpd, found on the instance) has a
  selected source and puts the clock within the threshold of it.
- ``source``: the selected source is one of the expected ones (e.g. Amazon Time Sync
  169.254.169.123, or the on-prem NTP servers).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest_drcheck.net.sntp as sntp
from pytest_drcheck.checks.base import Check, CheckContext, ExpansionError, Subject
from pytest_drcheck.durations import parse_duration
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import Observation, PlanItem
from pytest_drcheck.targets.base import CommandResult

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
SAMPLE_COMMAND = "date -u +%s.%N"
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
        reach = f"reach {parts[5]}" if parts[5] != "0" else "never answered"
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
_MISSING = (127,)


def daemon_views(daemons: Sequence[str], outputs: Sequence[CommandResult]
                 ) -> tuple[DaemonView | None, list[str]]:
    """The first daemon that answered, and why each one before it did not."""
    reasons = []
    for daemon, result in zip(daemons, outputs, strict=True):
        if result.exit_status in _MISSING:
            reasons.append(f"{daemon}: not installed")
            continue
        if result.timed_out:
            reasons.append(f"{daemon}: no answer in time")
            continue
        if not result.ok:
            lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
            message = lines[0].strip() if lines else f"exit {result.exit_status}"
            reasons.append(f"{daemon}: {message[:100]}")
            continue
        return _PARSERS[daemon](result.stdout), reasons
    return None, reasons


def parse_sample(stdout: str) -> tuple[float, float] | None:
    """(instance time, extra uncertainty) from `date -u +%s.%N`; a date without %N (busybox)
    prints whole seconds, worth half a second of uncertainty."""
    text = stdout.strip()
    try:
        return float(text), 0.0
    except ValueError:
        pass
    head = text.split(".")[0]
    return (float(head) + 0.5, 0.5) if head.isdigit() else None


def measure_offset(run: Any, timeout: float) -> tuple[float, float] | str:
    """(instance clock minus runner clock, uncertainty) or why not; ``run`` is target.run."""
    wall = time.time()
    started = time.monotonic()
    result: CommandResult = run(SAMPLE_COMMAND, timeout)
    round_trip = time.monotonic() - started
    if not result.ok:
        message = (result.stderr.strip().splitlines() or [f"exit {result.exit_status}"])[-1]
        return "timed out" if result.timed_out else f"`{SAMPLE_COMMAND}` failed: {message}"
    sample = parse_sample(result.stdout)
    if sample is None:
        return f"`{SAMPLE_COMMAND}` printed {result.stdout.strip()[:40]!r}, not a time"
    instance, extra = sample
    middle = wall + round_trip / 2
    return instance - middle, round_trip / 2 + extra


class TimeCheck(Check[Any]):
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
        params = item.params
        if params["property"] == "offset":
            return ()
        commands = [DAEMON_COMMANDS[d] for d in params["daemons"]]
        if params["property"] == "source":
            for name in params["sources"]:
                if not _is_address(name):
                    commands.append(f"getent ahostsv4 {shlex.quote(name)}")
        return commands

    def evaluate(self, ctx: CheckContext) -> Observation:
        prop = ctx.params["property"]
        if prop == "offset":
            return self._offset(ctx)
        daemons = ctx.params["daemons"]
        view, reasons = daemon_views(daemons, ctx.outputs[:len(daemons)])
        if prop == "sync":
            return self._sync(ctx, view, reasons)
        return self._source(ctx, view, reasons, ctx.outputs[len(daemons):])

    # --- offset ----------------------------------------------------------------------------

    def _offset(self, ctx: CheckContext) -> Observation:
        params = ctx.params
        limit = params["max_offset"]
        expected = f"within {format_offset(limit)[1:]} of {self._reference_words(params)}"
        reference_offset, reference_error, reference_note = 0.0, 0.0, ""
        started = time.monotonic()
        if params["ntp"] is not None:
            host, port = params["ntp"]
            try:
                sample = sntp.query(host, port, min(3.0, ctx.timeout / 3))
            except sntp.SntpError as exc:
                return Observation.failed(expected, "no reference",
                                          f"cannot read the reference clock: {exc}")
            reference_offset, reference_error = sample.offset, sample.delay / 2
            reference_note = f"; the runner's clock is {_fast_or_slow(-sample.offset)} of it"
        measured = measure_offset(ctx.target.run, max(1.0, ctx.timeout
                                                      - (time.monotonic() - started) - 0.5))
        if isinstance(measured, str):
            return Observation.failed(expected, "not measured",
                                      f"cannot sample the instance's clock: {measured}")
        offset = measured[0] - reference_offset
        uncertainty = measured[1] + reference_error
        observed = (f"{format_offset(offset)} (\u00b1{format_offset(uncertainty)[1:]}) "
                    f"against {self._reference_words(params)}{reference_note}")
        details = {"offset_seconds": round(offset, 6), "uncertainty_seconds":
                   round(uncertainty, 6), "reference": params["reference"],
                   "max_offset_seconds": limit}
        if abs(offset) + uncertainty <= limit:
            return Observation.passed(expected, observed, **details)
        reason = f"expected {expected}, observed {observed}"
        if abs(offset) - uncertainty <= limit:
            reason += "; the round trip is too long to tell at this threshold"
        return Observation.failed(expected, observed, reason, **details)

    @staticmethod
    def _reference_words(params: Mapping[str, Any]) -> str:
        if params.get("ntp") is None:
            return "the runner's clock"
        host, port = params["ntp"]
        return f"NTP server {host}" + (f":{port}" if port != 123 else "")

    # --- the daemon's view -----------------------------------------------------------------

    @staticmethod
    def _no_daemon(expected: str, reasons: list[str]) -> Observation:
        observed = f"no time daemon answers ({'; '.join(reasons)})"
        return Observation.failed(expected, observed, f"expected {expected}, observed "
                                                      f"{observed}")

    def _sync(self, ctx: CheckContext, view: DaemonView | None,
              reasons: list[str]) -> Observation:
        limit = ctx.params["max_offset"]
        expected = f"synchronised within {format_offset(limit)[1:]} of its source"
        if view is None:
            return self._no_daemon(expected, reasons)
        details = {"daemon": view.daemon, "source": view.source, "stratum": view.stratum,
                   "offset_seconds": view.offset}
        if not view.synchronised:
            observed = f"{view.daemon}: {view.problem}"
            return Observation.failed(expected, observed, f"expected {expected}, observed "
                                                          f"{observed}", **details)
        stratum = f" (stratum {view.stratum})" if view.stratum is not None else ""
        observed = f"{view.daemon} synchronised to {view.source}{stratum}"
        if view.offset is None:
            return Observation.passed(expected, observed, **details)
        observed += f", clock {_fast_or_slow(view.offset)} of it"
        if abs(view.offset) <= limit:
            return Observation.passed(expected, observed, **details)
        return Observation.failed(expected, observed, f"expected {expected}, observed "
                                                      f"{observed}", **details)

    def _source(self, ctx: CheckContext, view: DaemonView | None, reasons: list[str],
                lookups: Sequence[CommandResult]) -> Observation:
        wanted: list[str] = ctx.params["sources"]
        expected = " or ".join(wanted)
        if view is None:
            return Observation.skipped(expected, "no source to compare: no time daemon "
                                       f"answers ({'; '.join(reasons)})")
        if not view.synchronised or view.source is None:
            return Observation.skipped(expected, f"no selected source to compare: "
                                       f"{view.daemon} {view.problem}")
        addresses: dict[str, str] = {}
        names = [n for n in wanted if not _is_address(n)]
        for name, result in zip(names, lookups, strict=False):
            for line in result.stdout.splitlines():
                parts = line.split()
                if parts:
                    addresses.setdefault(parts[0], name)
        for name in wanted:
            if _is_address(name):
                addresses.setdefault(str(ipaddress.ip_address(name)), name)
        observed = f"{view.source} ({view.daemon})"
        details = {"daemon": view.daemon, "source": view.source,
                   "expected_addresses": sorted(addresses)}
        if view.source in addresses or view.source in wanted:
            shown = addresses.get(view.source, view.source)
            if shown != view.source:
                observed = f"{view.source} = {shown} ({view.daemon})"
            return Observation.passed(expected, observed, **details)
        return Observation.failed(expected, observed, f"expected {expected}, {view.daemon} "
                                  f"uses {view.source}", **details)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
