"""The collector's side of the logging check: searching the received log for markers.

Every check waiting on the same collector host shares one poller: each polling round is ONE
batched exec on the collector (through that host's own target), whatever the number of markers
outstanding. A search is the verify command: it prints the line(s) holding the marker and
exits 0 (found) or 1 (not found), as grep does; any other status, a timeout or a missing
command means the collector could not be searched, which the waiting check is told.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass

from pytest_drcheck.durations import format_duration
from pytest_drcheck.targets.base import CommandResult, Target, TargetError

POLL_INTERVAL = 0.2
# Timeout of one verifier command on the collector; a search of a log is quick or is stuck.
VERIFY_COMMAND_TIMEOUT = 5.0
# The verifier's exit statuses that mean it searched (grep: 0 found, 1 not found).
SEARCHED = (0, 1)
# Markers searched for in one round (oldest first); more wait for the next round.
MAX_MARKERS_PER_ROUND = 64


@dataclass(frozen=True)
class Sighting:
    found: bool
    # Monotonic time the search that found it returned (an upper bound of arrival).
    at: float = 0.0
    line: str = ""
    # Searches that ran to the end (exit 0 or 1) with this marker among the searched.
    searches: int = 0
    # The last of those searches started at or after the deadline.
    looked_after_deadline: bool = False
    # Why the last search could not tell (verifier unreachable, command error...), if it could
    # not; or why no search came back in time.
    trouble: str = ""


def search_trouble(result: CommandResult, host: str) -> str:
    """Why a verifier command did not search, or "" when it did (exit 0 or 1)."""
    said = last_line(result.stderr)
    if result.timed_out or result.exit_status == 124:
        why = f" ({said})" if said else ""
        return (f"the search timed out after {format_duration(VERIFY_COMMAND_TIMEOUT)} on "
                f"{host}{why}")
    if result.exit_status in SEARCHED:
        return ""
    if result.exit_status == 127:
        return f"the search command is not available on {host}: {said or 'command not found'}"
    if result.exit_status == 125:
        return f"the search did not run on {host}: {said or 'no output came back'}"
    return f"the search failed on {host} (exit {result.exit_status})" + (
        f": {said}" if said else "")


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
        # Start of the last search that ran to the end, per marker.
        self._last_started: dict[str, float] = {}
        # Start of the last round that included the marker, whatever its outcome.
        self._round_of: dict[str, float] = {}
        self._trouble: dict[str, str] = {}
        # Markers the round in flight searches for.
        self._in_round: set[str] = set()
        self._running = False
        # A marker arrived since the last round started: search again without pausing.
        self._fresh = False
        self._round_started: float | None = None

    def wait(self, marker: str, command: str, deadline: float, give_up: float) -> Sighting:
        """Search until the marker is found, or until a search that started at or after
        ``deadline`` has come back (so "not found" means absent at the deadline); never past
        ``give_up``."""
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
                now = time.monotonic()
                if now >= give_up or self._round_of.get(marker, 0.0) >= deadline:
                    break
                self._cond.wait((deadline if now < deadline else give_up) - now)
            self._pending.pop(marker, None)
            searches = self._searches.pop(marker, 0)
            last_started = self._last_started.pop(marker, 0.0)
            trouble = self._trouble.pop(marker, "")
            self._round_of.pop(marker, None)
            if marker in self._found:
                at, line = self._found.pop(marker)
                return Sighting(True, at, line, searches, last_started >= deadline)
            if self._round_started is not None and marker in self._in_round:
                stuck = time.monotonic() - self._round_started
                trouble = (f"the search on {self._target.name} has not returned after "
                           f"{format_duration(stuck)}")
            return Sighting(False, searches=searches,
                            looked_after_deadline=last_started >= deadline, trouble=trouble)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._running = False
                    return
                batch = list(self._pending.items())[:MAX_MARKERS_PER_ROUND]
                started = self._round_started = time.monotonic()
                self._in_round = {marker for marker, _ in batch}
                self._fresh = False
            outputs: list[tuple[bool, str, str]] = []
            error = ""
            try:
                self._target.connect()
                results = self._target.run_batch([c for _, c in batch], VERIFY_COMMAND_TIMEOUT)
                for (marker, _), result in zip(batch, results, strict=True):
                    lines = [line for line in result.stdout.splitlines() if marker in line]
                    # A line holding the unique marker is proof, whatever the exit status.
                    note = "" if lines else search_trouble(result, self._target.name)
                    outputs.append((bool(lines), lines[0][:400] if lines else "", note))
            except TargetError as exc:
                error = f"cannot reach {self._target.name}: {exc}"
            except Exception as exc:  # a broken verifier must end in a message, not a hang
                error = f"the search on {self._target.name} failed: {type(exc).__name__}: {exc}"
            ended = time.monotonic()
            with self._cond:
                self._round_started = None
                self._in_round = set()
                for index, (marker, _) in enumerate(batch):
                    if marker not in self._pending:
                        continue  # its check stopped waiting
                    self._round_of[marker] = started
                    if error:
                        self._trouble[marker] = error
                        continue
                    found, line, note = outputs[index]
                    if found:
                        self._found[marker] = (ended, line)
                    if note:
                        self._trouble[marker] = note
                        continue
                    self._trouble.pop(marker, None)
                    self._searches[marker] = self._searches.get(marker, 0) + 1
                    self._last_started[marker] = started
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


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""
