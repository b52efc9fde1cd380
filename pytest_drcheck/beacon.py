"""The replication beacon: a tiny file on each source server holding the current UTC time.

Rewritten every N seconds on the source, it travels to the recovery side with every other
block; on a recovery instance the newest time it holds says how much the drill would have
lost (the ``rpo`` check). The file is replaced atomically (write a temporary file, then
rename) so a reader never sees half a timestamp.
"""

from __future__ import annotations

import re
import shlex
from datetime import datetime, timezone

DEFAULT_PATH = "/var/lib/drcheck/beacon"
DEFAULT_INTERVAL = 60
# ISO-8601 in UTC as `date -u +%Y-%m-%dT%H:%M:%S.%NZ` prints it (fraction optional), an
# offset instead of Z, or plain epoch seconds: whatever a user's own writer puts there.
_ISO = re.compile(r"\A(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?"
                  r"(Z|[+-]\d{2}:?\d{2})?\Z")
_EPOCH = re.compile(r"\A\d{9,11}(?:\.\d{1,9})?\Z")


class BeaconError(ValueError):
    """The beacon's content is not a time; the message says what it holds instead."""


def parse_beacon(text: str) -> datetime:
    """The time a beacon holds (timezone-aware, UTC). A time without zone is UTC (the writer
    is `date -u`)."""
    value = text.strip()
    shown = value[:40] + ("..." if len(value) > 40 else "")
    if not value:
        raise BeaconError("the beacon is empty")
    if "\n" in value:
        value = value.splitlines()[-1].strip()  # an appended log of times: the newest
    if _EPOCH.match(value):
        return datetime.fromtimestamp(float(value), timezone.utc)
    match = _ISO.match(value)
    if match is None:
        raise BeaconError(f"the beacon holds {shown!r}, not a UTC time "
                          "(write `date -u +%Y-%m-%dT%H:%M:%S.%NZ`)")
    day, clock, fraction, zone = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    offset = "+00:00" if zone in (None, "Z") else zone
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}.{micro}{offset}")
    except ValueError:
        raise BeaconError(f"the beacon holds {shown!r}, not a valid date") from None
    return moment.astimezone(timezone.utc)


def writer_command(path: str = DEFAULT_PATH) -> str:
    """One beacon write: the UTC time to a temporary file, then renamed over the beacon."""
    quoted = shlex.quote(path)
    temporary = shlex.quote(path + ".tmp")
    return (f"mkdir -p {shlex.quote(_parent(path))} && date -u +%Y-%m-%dT%H:%M:%S.%NZ > "
            f"{temporary} && mv -f {temporary} {quoted}")


def _parent(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


def systemd_units(path: str = DEFAULT_PATH, interval: int = DEFAULT_INTERVAL
                  ) -> dict[str, str]:
    """A oneshot service and a timer that runs it every ``interval`` seconds."""
    if not 1 <= interval <= 86400:
        raise ValueError("the interval must be 1 to 86400 seconds")
    service = ("[Unit]\n"
               "Description=drcheck replication beacon (the UTC time, for the measured RPO)\n\n"
               "[Service]\n"
               "Type=oneshot\n"
               # '%' starts a unit-file specifier (%Y would be one): doubled.
               f"ExecStart=/bin/sh -c {shlex.quote(writer_command(path))}\n".replace(
                   "%", "%%"))
    timer = ("[Unit]\n"
             "Description=Write the drcheck replication beacon every "
             f"{interval} s\n\n"
             "[Timer]\n"
             f"OnBootSec={interval}s\n"
             f"OnUnitActiveSec={interval}s\n"
             "AccuracySec=1s\n\n"
             "[Install]\n"
             "WantedBy=timers.target\n")
    return {"drcheck-beacon.service": service, "drcheck-beacon.timer": timer}


def cron_line(path: str = DEFAULT_PATH, interval: int = DEFAULT_INTERVAL) -> str:
    """An /etc/cron.d line. Cron's unit is the minute: shorter intervals start one write per
    step inside the minute, each after its own sleep. '%' is a line break to cron: escaped."""
    if not 1 <= interval <= 86400:
        raise ValueError("the interval must be 1 to 86400 seconds")
    command = writer_command(path).replace("%", "\\%")
    if interval >= 60:
        minutes = interval // 60
        every = "*" if minutes == 1 else f"*/{min(minutes, 59)}"
        return f"{every} * * * * root {command}\n"
    steps = " ".join(str(s) for s in range(0, 60, interval))
    return f"* * * * * root for s in {steps}; do (sleep $s; {command}) & done; wait\n"
