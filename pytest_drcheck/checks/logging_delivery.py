"""logging: a syslog collector is reachable from the instance AND messages really arrive.

For each path the inventory names (``tcp``: straight to the collector over TCP, the connection
made by the instance; ``udp``: a datagram the instance sends with ``logger``; ``local``: the
instance's own logging path, ``logger`` to its syslog daemon, which must forward), the check
emits a unique, timestamped marker and then polls a verifier until the marker shows up or the
deadline (``within`` after the marker left) passes. The verifier is a command run on the
collector host through that host's own target (a search of the received log): it prints the
line(s) holding the marker and exits 0 (found) or 1 (not found), as grep does. A port that
accepts connections but drops the messages therefore fails, with "reachable but not delivered".

A failed delivery is only "searched N times until the deadline, marker absent": the search
in flight at the deadline is waited for, so the last search looked after the deadline. When
the collector could not be searched at all (its host unusable, the search command failing,
missing or timing out, or not returning before the check's own timeout), delivery could not
be observed: an error naming that cause, never "not delivered".

The paths need nothing of each other (no ``requires``): a collector that refuses TCP may still
take UDP, and the precondition they share, a collector that can be searched, is not a property
of the instance; each test observes it itself (above) and says so when it fails.

The searching is ``checks.collector_search``: one poller per collector host, one batched exec
per round whatever the number of markers outstanding.
"""

from __future__ import annotations

import re
import secrets
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar, TypeAlias

from pytest_drcheck.checks.base import (
    Check,
    CheckContext,
    ExpansionError,
    Subject,
    site_service,
)
from pytest_drcheck.checks.collector_search import Sighting, last_line, watcher_for
from pytest_drcheck.checks.tcp_probe import OBSERVED_OUTCOMES, require_responsive
from pytest_drcheck.durations import format_duration, parse_duration
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import CouldNotObserve, Observation, PlanItem
from pytest_drcheck.targets.base import StreamError, TargetError

VIAS = ("tcp", "udp", "local")
DEFAULT_WITHIN = 10.0
DEFAULT_CONNECT_TIMEOUT = 3.0
# Kept free at the end of the check's timeout so a result is reported before the engine's
# watchdog gives up on the check.
REPORT_MARGIN = 0.5
# Longest wait for the marker to be sent (logger on the instance).
SEND_TIMEOUT = 10.0
MARKER_PLACEHOLDER = "{marker}"
_NAME = vocabulary.NAME_PATTERN
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")

_PORT = vocabulary.PORT
_DURATION: dict[str, Any] = vocabulary.TIMEOUT
COLLECTOR_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["address", "verify"],
    "properties": {
        "description": {"type": "string"},
        "address": vocabulary.HOST_ADDRESS,
        "tcp": _PORT,
        "udp": _PORT,
        "within": _DURATION,
        "verify": {
            "type": "object", "additionalProperties": False, "required": ["host", "command"],
            "properties": {
                "host": {"type": "string", "pattern": _NAME,
                         "x-expect": "the inventory host the search runs on (the collector)"},
                "command": {"type": "string", "minLength": 1,
                            "x-expect": "a shell command containing {marker} that prints the "
                                        "received line(s) holding the marker"},
            },
        },
    },
}


def new_marker(host: str, via: str, now: datetime | None = None) -> str:
    """Unique and timestamped, from a shell-safe alphabet (it goes into grep, logger, URLs)."""
    now = now or datetime.now(timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%S.") + f"{now.microsecond // 1000:03d}Z"
    return f"drcheck-{_SAFE.sub('_', host)}-{via}-{stamp}-{secrets.token_hex(4)}"


def syslog_line(host: str, marker: str, now: datetime | None = None) -> bytes:
    """RFC 5424 message, LF-framed (RFC 6587 non-transparent framing, which every collector
    that takes TCP syslog reads); facility user, severity notice."""
    now = now or datetime.now(timezone.utc)
    stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"<13>1 {stamp} {_SAFE.sub('_', host)} drcheck - - - {message_text(marker)}\n".encode()


def message_text(marker: str) -> str:
    return f"drcheck delivery marker {marker}"


def logger_command(via: str, marker: str, address: str | None = None,
                   port: int | None = None) -> str:
    """The instance-side command that emits the marker (udp straight, or the local path)."""
    text = shlex.quote(message_text(marker))
    if via == "udp":
        send = (f"logger -d -n {shlex.quote(str(address))} -P {port} -t drcheck -p user.notice "
                f"-- {text}")
    else:
        # socket-errors=on: no syslog daemon on the instance is an error, not a silent no-op.
        send = f"logger --socket-errors=on -t drcheck -p user.notice -- {text}"
    return ("command -v logger >/dev/null 2>&1 || { echo 'logger (util-linux) is not "
            "installed on the instance' >&2; exit 127; }; " + send)


def verify_command(template: str, marker: str) -> str:
    return template.replace(MARKER_PLACEHOLDER, shlex.quote(marker))


# --- typed parameters and observed values ---------------------------------------------------


@dataclass(frozen=True)
class LoggingParams:
    collector: str
    via: str
    address: str
    port: int | None
    verify_host: str
    verify_command: str
    within: float
    connect_timeout: float

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> LoggingParams:
        port = params["port"]
        return cls(params["collector"], params["via"], params["address"],
                   int(port) if port is not None else None, params["verify_host"],
                   params["verify_command"], float(params["within"]),
                   float(params["connect_timeout"]))

    @property
    def path(self) -> str:
        if self.via == "local":
            return "the instance's own syslog"
        return f"{self.address}:{self.port}/{self.via}"


@dataclass(frozen=True)
class NotSent:
    """The marker could not leave the instance: ``observed`` in short, ``why`` in the failure
    line after "expected ..., "."""

    observed: str
    why: str
    outcome: str = ""


@dataclass(frozen=True)
class Delivery:
    """A marker that left the instance, and what the collector's searches showed."""

    marker: str
    sent_at: str
    sighting: Sighting
    # Seconds from sending to the search that found it, or spent waiting in vain.
    seconds: float


LoggingValue: TypeAlias = NotSent | Delivery


# --- the check -------------------------------------------------------------------------------


class LoggingCheck(Check[LoggingValue]):
    type_name: ClassVar[str] = "logging"
    site_key: ClassVar[str | None] = "logging"
    default_timeout: ClassVar[float] = 20.0
    entry_schema: ClassVar[Mapping[str, Any]] = {
        "required": ["collector"],
        "properties": {
            "collector": {"type": "string", "minLength": 1,
                          "x-expect": "the name of a collector in site.logging.collectors"},
            "via": {"type": "array", "items": {"enum": list(VIAS)}, "minItems": 1,
                    "uniqueItems": True,
                    "x-expect": "a list of paths: tcp and/or udp (straight to the collector), "
                                "local (the instance's own syslog daemon)"},
            "within": _DURATION,
            "connect_timeout": _DURATION,
        },
    }
    site_schema: ClassVar[Mapping[str, Any] | None] = {
        "type": "object", "additionalProperties": False,
        "properties": {
            "collectors": {"type": "object", "x-kind": "collector",
                           "propertyNames": {"pattern": _NAME},
                           "additionalProperties": COLLECTOR_SCHEMA},
        },
    }

    def site_host_references(self, section: Mapping[str, Any]
                             ) -> Sequence[tuple[tuple[str | int, ...], str]]:
        return [(("collectors", name, "verify", "host"), collector["verify"]["host"])
                for name, collector in section.get("collectors", {}).items()]

    def expand(self, entry: Mapping[str, Any], site: Mapping[str, Any]) -> list[Subject]:
        collectors: Mapping[str, Any] = site.get("logging", {}).get("collectors", {})
        name = entry["collector"]
        collector = site_service(collectors, name, "collector", "site.logging.collectors",
                                 ".collector")
        if MARKER_PLACEHOLDER not in collector["verify"]["command"]:
            raise ExpansionError(f"site.logging.collectors.{name}.verify.command must contain "
                                 f"{MARKER_PLACEHOLDER} (where the marker goes), e.g. grep -F "
                                 f"-- {MARKER_PLACEHOLDER} /var/log/remote.log", ".collector",
                                 ("logging", "collectors", name, "verify", "command"))
        default_via = [v for v in ("tcp", "udp") if v in collector]
        vias = list(entry.get("via", default_via))
        if not vias:
            raise ExpansionError(f"collector '{name}' has neither a tcp nor a udp port; add one "
                                 "there or say via: [local]", ".collector")
        for via in vias:
            if via in ("tcp", "udp") and via not in collector:
                raise ExpansionError(f"via {via}: collector '{name}' has no {via} port; add "
                                     f"'{via}: 514' to it", ".via")
        try:
            within = parse_duration(entry.get("within", collector.get("within",
                                                                      DEFAULT_WITHIN)))
            connect_timeout = parse_duration(entry.get("connect_timeout",
                                                       DEFAULT_CONNECT_TIMEOUT))
        except ValueError as exc:
            raise ExpansionError(f"{exc}; fix it") from None
        return [Subject(f"{name}/{via}", {
            "collector": name, "via": via, "address": collector["address"],
            "port": collector.get(via), "verify_host": collector["verify"]["host"],
            "verify_command": collector["verify"]["command"], "within": within,
            "connect_timeout": connect_timeout}) for via in vias]

    def expected(self, item: PlanItem) -> str:
        params = LoggingParams.of(item.params)
        return f"marker delivered to {params.collector} within {format_duration(params.within)}"

    def observe(self, ctx: CheckContext) -> LoggingValue:
        params = LoggingParams.of(ctx.params)
        # Everything below must end before the check's own timeout (the engine's watchdog).
        give_up = time.monotonic() + max(0.5, ctx.timeout - REPORT_MARGIN)
        try:
            verifier = ctx.target_of(params.verify_host)
        except KeyError:
            raise CouldNotObserve(f"verify.host '{params.verify_host}' is not a host of this "
                                  "inventory; add the collector host under hosts:") from None
        # Connected before the marker leaves: the verifier's first SSH handshake must not be
        # counted as delivery time, and an unusable verifier leaves delivery unobserved.
        try:
            verifier.connect()
        except TargetError as exc:
            raise CouldNotObserve(f"cannot search the collector: {exc}") from None
        marker = new_marker(ctx.item.host, params.via)
        sent_at = datetime.now(timezone.utc)
        not_sent = self._send(ctx, params, marker, sent_at, give_up)
        if not_sent is not None:
            return not_sent
        sent = time.monotonic()
        # `within` counts from the moment the marker left, not from the start of the check:
        # connecting to the verifier and sending (a slow stream) are not delivery time.
        deadline = min(sent + params.within, give_up)
        sighting = watcher_for(verifier).wait(
            marker, verify_command(params.verify_command, marker), deadline, give_up)
        seconds = (sighting.at if sighting.found else time.monotonic()) - sent
        if not sighting.found:
            self._require_searched(params, sighting, seconds,
                                   cut_short=deadline < sent + params.within)
        return Delivery(marker, sent_at.isoformat(timespec="milliseconds"), sighting,
                        max(0.0, seconds))

    @staticmethod
    def _require_searched(params: LoggingParams, sighting: Sighting, waited: float,
                          cut_short: bool) -> None:
        """A marker not found is "not delivered" only if a search that started at or after
        the deadline came back; otherwise delivery was not observed, and the cause is named."""
        host = params.verify_host
        if sighting.searches == 0:
            why = sighting.trouble or "no search came back"
            raise CouldNotObserve(f"{host} could not be searched for the marker in "
                                  f"{format_duration(waited)}: {why}")
        if cut_short:
            raise CouldNotObserve(
                f"the check's timeout left {format_duration(waited)} of the "
                f"{format_duration(params.within)} to wait for the marker ({sighting.searches} "
                "searches, not found); raise the check's timeout")
        if not sighting.looked_after_deadline:
            raise CouldNotObserve(
                f"{host} was not searched after the deadline ({sighting.searches} searches "
                f"before it, not found); last search: {sighting.trouble or 'none came back'}")

    def judge(self, item: PlanItem, value: LoggingValue) -> Observation:
        params = LoggingParams.of(item.params)
        expected = self.expected(item)
        if isinstance(value, NotSent):
            outcome = {"outcome": value.outcome} if value.outcome else {}
            return Observation.failed(expected, value.observed,
                                      f"expected {expected}, {value.why}", **outcome)
        sighting = value.sighting
        details: dict[str, Any] = {
            "marker": value.marker, "sent_at": value.sent_at, "path": params.path,
            "verifier": params.verify_host, "searches": sighting.searches}
        if sighting.found:
            return Observation.passed(
                expected, f"delivered within {format_duration(value.seconds)}: {value.marker} "
                f"via {params.path}, found by {params.verify_host} (search "
                f"{sighting.searches})",
                delivery_seconds=round(value.seconds, 3), line=sighting.line, **details)
        searched = (f"{params.verify_host} did not find it in "
                    f"{format_duration(value.seconds)} ({sighting.searches} searches)")
        if sighting.trouble:
            searched += f"; last search: {sighting.trouble}"
        if params.via == "tcp":
            observed = (f"reachable but not delivered: {params.path} accepted {value.marker}, "
                        f"{searched}")
        elif params.via == "udp":
            observed = (f"not delivered: {value.marker} sent via {params.path} (UDP has no "
                        f"handshake: arrival is the only proof), {searched}")
        else:
            observed = f"not delivered: the instance's syslog took {value.marker}, {searched}"
        return Observation.failed(expected, observed, **details)

    @staticmethod
    def _send(ctx: CheckContext, params: LoggingParams, marker: str, sent_at: datetime,
              give_up: float) -> NotSent | None:
        """Emit the marker from the instance; NotSent when the instance could not send it."""
        path = params.path
        host = ctx.item.host
        if params.via == "tcp" and params.port is not None:
            connect_timeout = min(params.connect_timeout, ctx.timeout)
            try:
                stream = ctx.target.open_stream(params.address, params.port, connect_timeout)
            except StreamError as exc:
                if exc.outcome not in OBSERVED_OUTCOMES:
                    # Never attempted (sshd refused the channel, say): nothing was observed.
                    raise CouldNotObserve(f"cannot open the collector connection: {exc}"
                                          ) from None
                if exc.outcome == "timed out":
                    require_responsive(ctx.target, str(exc), connect_timeout)
                shown = (f"timed out after {format_duration(connect_timeout)}"
                         if exc.outcome == "timed out" else exc.outcome)
                return NotSent(f"{path} {shown}", f"observed {path} {shown} (collector "
                               "unreachable)", exc.outcome)
            try:
                stream.settimeout(connect_timeout)
                stream.sendall(syslog_line(host, marker, sent_at))
            except OSError as exc:
                return NotSent(f"{path} send failed",
                               f"observed {path} connected but sending failed: {exc}")
            finally:
                stream.close()
            return None
        command = logger_command(params.via, marker, params.address, params.port)
        timeout = max(0.5, min(SEND_TIMEOUT, give_up - time.monotonic()))
        if ctx.item.platform == "windows":  # the event log or a datagram (windows/logging.py)
            from pytest_drcheck.checks.windows.logging import marker_command

            (result,) = ctx.target.run_batch([marker_command(
                params.via, message_text(marker), syslog_line(host, marker, sent_at),
                params.address, params.port)], timeout)
        else:
            result = ctx.target.run(command, timeout)
        said = last_line(result.stderr) or last_line(result.stdout)
        if result.timed_out or result.exit_status == 124:
            # The target says why when the command never started (no SSH session in time).
            how = f" ({said})" if said else ""
            raise CouldNotObserve(f"`logger` timed out after {format_duration(timeout)} on "
                                  f"{host}{how}: the marker could not be sent")
        if result.exit_status == 127:
            raise CouldNotObserve(said or f"logger is not available on {host}")
        if result.ok:
            return None
        why = said or f"exit status {result.exit_status}"
        return NotSent("not sent", f"the instance could not send the marker via {path}: {why}")
