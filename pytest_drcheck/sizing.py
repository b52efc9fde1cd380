"""Replication-link sizing: servers x write rate -> the link bandwidth replication needs.

Pure arithmetic, shared by ``drcheck size`` and the ``replication`` check. Units are explicit
because they are where sizing goes wrong: ``GB``/``MB``/``TB`` are decimal (10^9, 10^6, 10^12
bytes), ``GiB``/``MiB``/``TiB`` binary (2^30, ...); a Mbit is 10^6 bits, as links are sold.
The link figure is the average write rate before protocol overhead: a link below it can never
catch up, so replication lags and the RPO grows.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

SECONDS_PER_DAY = 86400.0
BITS_PER_MBIT = 1e6
DEFAULT_HEADROOM = 1.3

_UNIT_BYTES = {
    "": 1.0, "b": 1.0,
    "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
    "kib": 2.0 ** 10, "mib": 2.0 ** 20, "gib": 2.0 ** 30, "tib": 2.0 ** 40,
}
_SIZE = re.compile(r"\A([0-9]{1,12}(?:\.[0-9]{1,9})?) ?([kmgt]i?b|b)?\Z", re.IGNORECASE)
_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
        "h": 3600.0, "hour": 3600.0, "d": SECONDS_PER_DAY, "day": SECONDS_PER_DAY}


def parse_size(text: str) -> float:
    """Bytes in ``20GB`` (decimal), ``20GiB`` (binary), ``512MB``, ``1.5TB``, ``4096``.
    Raises ValueError naming the accepted forms."""
    match = _SIZE.match(text.strip()) if len(text) <= 40 else None
    if not match:
        raise ValueError(f"{text!r} is not a size; write e.g. 20GB (10^9 bytes) or 20GiB "
                         "(2^30 bytes)")
    return float(match.group(1)) * _UNIT_BYTES[(match.group(2) or "").lower()]


def parse_rate(text: str) -> float:
    """Bytes per second in ``20GB/day``, ``5MB/s``, ``300MiB/h``; a bare size is per day."""
    size, sep, per = text.strip().partition("/")
    if not sep:
        return parse_size(size) / SECONDS_PER_DAY
    seconds = _PER.get(per.strip().lower())
    if seconds is None:
        raise ValueError(f"{text!r}: rate unit '/{per}' is not one of /s, /min, /h, /day")
    return parse_size(size) / seconds


# Bits only: a lower-case b (MB/s and MBps are bytes, eight times more).
_BANDWIDTH = re.compile(r"\A([0-9]{1,9}(?:\.[0-9]{1,6})?) ?([kKmMgGtT])(?:bit/s|bps)\Z")
_BIT_UNITS = {"k": 1e-3, "m": 1.0, "g": 1e3, "t": 1e6}


def parse_bandwidth(text: str | float | int) -> float:
    """Mbit/s in ``100Mbit/s``, ``1 Gbit/s``, ``500Mbps`` (decimal: 1 Gbit = 1000 Mbit); a
    bare number is Mbit/s."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not math.isfinite(text) or text <= 0:
            raise ValueError(f"{text!r} is not a bandwidth; write e.g. 100Mbit/s")
        return float(text)
    match = _BANDWIDTH.match(str(text).strip()) if len(str(text)) <= 32 else None
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a bandwidth; write e.g. 100Mbit/s or 1Gbit/s")
    return float(match.group(1)) * _BIT_UNITS[match.group(2).lower()]


def mbit_per_s(bytes_per_second: float) -> float:
    return bytes_per_second * 8 / BITS_PER_MBIT


@dataclass(frozen=True)
class LinkSizing:
    servers: int
    bytes_per_second_each: float
    headroom: float

    @property
    def total_bytes_per_second(self) -> float:
        return self.servers * self.bytes_per_second_each

    @property
    def average_mbit_per_s(self) -> float:
        """The unrounded average: what the link must carry just to keep up."""
        return mbit_per_s(self.total_bytes_per_second)

    @property
    def with_headroom_mbit_per_s(self) -> float:
        return self.average_mbit_per_s * self.headroom

    @property
    def provision_mbit_per_s(self) -> int:
        """The link to provision: with headroom, rounded *up* to a whole Mbit/s (rounding down
        would size the link below what replication needs)."""
        return math.ceil(round(self.with_headroom_mbit_per_s, 9))


def size_link(servers: int, bytes_per_second_each: float,
              headroom: float = DEFAULT_HEADROOM) -> LinkSizing:
    if servers < 1:
        raise ValueError(f"servers must be 1 or more, not {servers}")
    if not math.isfinite(bytes_per_second_each) or bytes_per_second_each < 0:
        raise ValueError("the write rate must be a finite figure, 0 or more")
    if not math.isfinite(headroom) or headroom < 1:
        raise ValueError(f"headroom must be a factor of 1 or more (1.3 = 30 % spare), "
                         f"not {headroom}")
    return LinkSizing(servers, bytes_per_second_each, headroom)


def describe(sizing: LinkSizing) -> list[str]:
    """The calculation in lines a person can check by hand."""
    per_day_each = sizing.bytes_per_second_each * SECONDS_PER_DAY
    total_per_day = sizing.total_bytes_per_second * SECONDS_PER_DAY
    return [
        f"{sizing.servers} servers x {per_day_each / 1e9:.4g} GB/day each "
        f"= {total_per_day / 1e9:.4g} GB/day (GB = 10^9 bytes)",
        f"average write rate: {sizing.average_mbit_per_s:.1f} Mbit/s (Mbit = 10^6 bits; "
        "rounded to the nearest 0.1 Mbit/s), before protocol overhead",
        f"with headroom x{sizing.headroom:g}: {sizing.with_headroom_mbit_per_s:.1f} Mbit/s; "
        f"provision at least {sizing.provision_mbit_per_s} Mbit/s (rounded up to a whole "
        "Mbit/s)",
    ]


# --- DRS's bandwidth throttle (bandwidthThrottling: Mbit/s per source server, 0 = none) ------


def parse_throttle(text: str | float | int) -> float | None:
    """Mbit/s of a throttle written as a bandwidth (``50Mbit/s``, or a bare number of Mbit/s);
    0 (``0``, ``0Mbit/s``) is DRS's "not throttled": None."""
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text == 0:
        return None
    if _ZERO.match(str(text).strip()):
        return None
    return parse_bandwidth(text)


_ZERO = re.compile(r"\A0+(?:\.0+)? ?(?:[kKmMgGtT](?:bit/s|bps))?\Z")


@dataclass(frozen=True)
class ThrottleFit:
    """One source server's throttle against what it writes. DRS throttles each source
    server's replication agent on its own, so the comparison is per server."""

    throttle_mbit_per_s: float | None
    average_mbit_per_s: float
    headroom: float

    @property
    def needed_mbit_per_s(self) -> float:
        return self.average_mbit_per_s * self.headroom

    @property
    def verdict(self) -> str:
        """'unthrottled'; 'fits' (at least the rate with headroom); 'tight' (the average, not
        the headroom: it falls behind at peaks and catches up); 'too low' (below the average:
        replication never catches up)."""
        throttle = self.throttle_mbit_per_s
        if throttle is None:
            return "unthrottled"
        if throttle < self.average_mbit_per_s:
            return "too low"
        return "tight" if throttle < self.needed_mbit_per_s else "fits"


def describe_throttle(sizing: LinkSizing, throttle_mbit_per_s: float | None) -> list[str]:
    """``describe``'s lines for a DRS throttle applied to each of the servers."""
    if throttle_mbit_per_s is None:
        return ["DRS throttle: none (0 = not throttled): only the link limits replication"]
    fit = ThrottleFit(throttle_mbit_per_s, mbit_per_s(sizing.bytes_per_second_each),
                      sizing.headroom)
    lines = [
        f"DRS throttle: {throttle_mbit_per_s:g} Mbit/s per source server (bandwidthThrottling "
        f"applies to each server's replication agent); each server writes "
        f"{fit.average_mbit_per_s:.2f} Mbit/s on average, {fit.needed_mbit_per_s:.2f} Mbit/s "
        f"with headroom x{sizing.headroom:g}",
    ]
    raise_to = math.ceil(round(fit.needed_mbit_per_s, 9))
    lines.append({
        "fits": "the throttle fits: it is at least each server's rate with headroom",
        "tight": ("the throttle fits the average but not the headroom: replication falls "
                  f"behind at peaks; raise it to {raise_to} Mbit/s"),
        "too low": ("the throttle is too low: below each server's average write rate, "
                    f"replication lags and the RPO grows; raise it to {raise_to} Mbit/s"),
    }[fit.verdict])
    return lines
