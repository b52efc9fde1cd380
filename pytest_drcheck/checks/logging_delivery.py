"""logging: a syslog collector is reachable from the instance AND messages really arrive.

For each path the inventory names (``tcp``: straight to the collector over TCP, the connection
made by the instance; ``udp``: a datagram the instance sends with ``logger``; ``local``: the
instance's own logging path, ``logger`` to its syslog daemon, which must forward), the check
emits a unique, timestamped marker and then polls a verifier until the marker shows up or the
deadline passes. The verifier is a command run on the collector host through that host's own
target (a search of the received log). A port that accepts connections but drops the messages
therefore fails, with "reachable but not delivered".

Every check waiting on the same collector host shares one poller: each polling round is ONE
batched exec on the collector, whatever the number of markers outstanding.
"""

from __future__ import annotations

import re
import secrets
import shlex
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar

from pytest_drcheck.checks.base import (
    Check,
    CheckContext,
    ExpansionError,
    Subject,
    site_service,
)
from pytest_drcheck.durations import format_duration, parse_duration
from pytest_drcheck.inventory import vocabulary
from pytest_drcheck.model import Observation
from pytest_drcheck.targets.base import StreamError, Target, TargetError

VIAS = ("tcp", "udp", "local")
DEFAULT_WITHIN = 10.0
DEFAULT_CONNECT_TIMEOUT = 3.0
POLL_INTERVAL = 0.2
# Timeout of one verifier command on the collector; a search of a log is quick or is stuck.
VERIFY_COMMAND_TIMEOUT = 5.0
# Markers searched for in one round (oldest first); more wait for the next round.
MAX_MARKERS_PER_ROUND = 64
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


# --- the shared poller -----------------------------------------------------------------------


@dataclass(frozen=True)
class Sighting:
    found: bool
    # Monotonic time the search that found it returned (an upper bound of arrival).
    at: float = 0.0
    line: str = ""
    searches: int = 0
    # Why the last search could not tell (verifier unreachable, command error...), if it could
    # not.
    trouble: str = ""


class _Watcher:
    """Searches one collector host for every outstanding marker, one batched exec per round.

    Rounds run in a background thread that lives while markers are outstanding, so a check
    waiting on it never blocks past its own deadline, even when the collector host hangs.
    """

    def __init__(self, target: Target) -> None:
        self._target = target
        self._cond = threading.Condition()
        self._pending: dict[str, str] = {}  # marker -> command
        self._found: dict[str, tuple[float, str]] = {}
        self._searches: dict[str, int] = {}
        self._trouble: dict[str, str] = {}
        self._running = False
        # A marker arrived since the last round started: search again without pausing.
        self._fresh = False
        self._round_started: float | None = None

    def wait(self, marker: str, command: str, deadline: float) -> Sighting:
        with self._cond:
            self._pending[marker] = command
            self._searches[marker] = 0
            self._fresh = True
            self._cond.notify_all()
            if not self._running:
                self._running = True
                threading.Thread(target=self._loop, name=f"drcheck-verify-{self._target.name}",
                                 daemon=True).start()
            while marker not in self._found:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._pending.pop(marker, None)
            searches = self._searches.pop(marker, 0)
            trouble = self._trouble.pop(marker, "")
            if marker in self._found:
                at, line = self._found.pop(marker)
                return Sighting(True, at, line, searches)
            if self._round_started is not None and not trouble:
                stuck = time.monotonic() - self._round_started
                if stuck > VERIFY_COMMAND_TIMEOUT:
                    trouble = (f"the search on {self._target.name} has not returned for "
                               f"{format_duration(stuck)}")
            return Sighting(False, searches=searches, trouble=trouble)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._running = False
                    return
                batch = list(self._pending.items())[:MAX_MARKERS_PER_ROUND]
                self._round_started = time.monotonic()
                self._fresh = False
            outputs: list[tuple[bool, str, str]] = []
            error = ""
            try:
                self._target.connect()
                results = self._target.run_batch([c for _, c in batch], VERIFY_COMMAND_TIMEOUT)
                for (marker, _), result in zip(batch, results, strict=True):
                    lines = [line for line in result.stdout.splitlines() if marker in line]
                    said = result.stderr.strip().splitlines()
                    note = ("the search timed out" if result.timed_out else
                            said[-1][:160] if said and not lines else "")
                    outputs.append((bool(lines), lines[0][:400] if lines else "", note))
            except TargetError as exc:
                error = f"cannot reach {self._target.name}: {exc}"
            except Exception as exc:  # a broken verifier must end in a message, not a hang
                error = f"the search on {self._target.name} failed: {type(exc).__name__}: {exc}"
            ended = time.monotonic()
            with self._cond:
                self._round_started = None
                for index, (marker, _) in enumerate(batch):
                    if marker not in self._pending:
                        continue  # its check stopped waiting
                    self._searches[marker] = self._searches.get(marker, 0) + 1
                    if error:
                        self._trouble[marker] = error
                        continue
                    found, line, note = outputs[index]
                    if found:
                        self._found[marker] = (ended, line)
                    if note:
                        self._trouble[marker] = note
                    else:
                        self._trouble.pop(marker, None)
                self._cond.notify_all()
                pause_until = time.monotonic() + POLL_INTERVAL
                while not self._fresh and (left := pause_until - time.monotonic()) > 0:
                    self._cond.wait(left)


# Run-scoped state keyed by the run's own target objects (weakly: a finished run's targets,
# and their watchers, go away with it), so checks of one run share one poller per collector.
_WATCHERS: weakref.WeakKeyDictionary[Target, _Watcher] = weakref.WeakKeyDictionary()
_WATCHERS_LOCK = threading.Lock()


def watcher_for(target: Target) -> _Watcher:
    with _WATCHERS_LOCK:
        watcher = _WATCHERS.get(target)
        if watcher is None:
            watcher = _WATCHERS[target] = _Watcher(target)
        return watcher


# --- the check -------------------------------------------------------------------------------


class LoggingCheck(Check):
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

    def evaluate(self, ctx: CheckContext) -> Observation:
        params = ctx.params
        started = time.monotonic()
        budget = min(params["within"], max(0.5, ctx.timeout - 1.0))
        expected = f"marker delivered to {params['collector']} within {format_duration(budget)}"
        path = self._path(params)
        try:
            verifier = ctx.target_of(params["verify_host"])
        except KeyError:
            return Observation.failed(expected, "unverifiable", (
                f"expected {expected}, but verify.host '{params['verify_host']}' is not a host "
                "of this inventory; add the collector host under hosts:"))
        # Connected before the marker leaves: the verifier's first SSH handshake must not be
        # counted as delivery time, and an unusable verifier makes the test unverifiable, not
        # "not delivered".
        try:
            verifier.connect()
        except TargetError as exc:
            return Observation.failed(expected, "unverifiable",
                                      f"expected {expected}, cannot search the collector: {exc}")
        marker = new_marker(ctx.item.host, params["via"])
        sent_at = datetime.now(timezone.utc)
        failure = self._send(ctx, marker, sent_at, expected)
        if failure is not None:
            return failure
        sent = time.monotonic()
        deadline = started + budget
        sighting = watcher_for(verifier).wait(
            marker, verify_command(params["verify_command"], marker), deadline)
        details = {"marker": marker, "sent_at": sent_at.isoformat(timespec="milliseconds"),
                   "path": path, "verifier": params["verify_host"],
                   "searches": sighting.searches}
        if sighting.found:
            took = max(0.0, sighting.at - sent)
            return Observation.passed(
                expected, f"delivered within {format_duration(took)}: {marker} via {path}, "
                f"found by {params['verify_host']} (search {sighting.searches})",
                delivery_seconds=round(took, 3), line=sighting.line, **details)
        waited = format_duration(time.monotonic() - sent)
        searched = (f"{params['verify_host']} did not find it in {waited} "
                    f"({sighting.searches} searches)")
        if sighting.trouble:
            searched += f"; last search: {sighting.trouble}"
        if params["via"] == "tcp":
            observed = f"reachable but not delivered: {path} accepted {marker}, {searched}"
        elif params["via"] == "udp":
            observed = (f"not delivered: {marker} sent via {path} (UDP has no handshake: "
                        f"arrival is the only proof), {searched}")
        else:
            observed = (f"not delivered: the instance's syslog took {marker}, {searched}")
        return Observation.failed(expected, observed, **details)

    @staticmethod
    def _path(params: Mapping[str, Any]) -> str:
        if params["via"] == "local":
            return "the instance's own syslog"
        return f"{params['address']}:{params['port']}/{params['via']}"

    def _send(self, ctx: CheckContext, marker: str, sent_at: datetime,
              expected: str) -> Observation | None:
        """Emit the marker from the instance; an Observation when that already failed."""
        params = ctx.params
        path = self._path(params)
        if params["via"] == "tcp":
            connect_timeout = min(params["connect_timeout"], ctx.timeout)
            try:
                stream = ctx.target.open_stream(params["address"], params["port"],
                                                connect_timeout)
            except StreamError as exc:
                shown = (f"timed out after {format_duration(connect_timeout)}"
                         if exc.outcome == "timed out" else exc.outcome)
                return Observation.failed(expected, f"{path} {shown}",
                                          f"expected {expected}, observed {path} {shown} "
                                          "(collector unreachable)", outcome=exc.outcome)
            try:
                stream.settimeout(connect_timeout)
                stream.sendall(syslog_line(ctx.item.host, marker, sent_at))
            except OSError as exc:
                return Observation.failed(expected, f"{path} send failed",
                                          f"expected {expected}, observed {path} connected "
                                          f"but sending failed: {exc}")
            finally:
                stream.close()
            return None
        command = logger_command(params["via"], marker, params["address"], params["port"])
        result = ctx.target.run(command, min(ctx.timeout, 10.0))
        if result.ok:
            return None
        said = (result.stderr or result.stdout).strip().splitlines()
        why = "timed out" if result.timed_out else (
            said[-1][:200] if said else f"exit status {result.exit_status}")
        return Observation.failed(expected, "not sent",
                                  f"expected {expected}, the instance could not send the "
                                  f"marker via {path}: {why}")
