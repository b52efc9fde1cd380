"""Durations as people write them in inventories and options: 90, 90s, 1.5m, 4h, 250ms, 1d."""

from __future__ import annotations

import math
import re

# Linear time on any input: no adjacent unbounded repetitions (the old `\s*(...)\s*(unit)?\s*`
# took 25 s of CPU on '1' + 60000 spaces + 'x'), bounded digit runs, \Z (not $, which lets a
# trailing newline through). Surrounding blanks are stripped before matching.
DURATION_PATTERN = r"\A[0-9]{1,9}(?:\.[0-9]{1,9})? ?(ms|s|m|h|d)?\Z"
_DURATION = re.compile(DURATION_PATTERN)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_LONGEST = 32


def parse_duration(value: str | float | int) -> float:
    """Seconds (0 or more, finite). Raises ValueError with a message that shows the accepted
    forms."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{_shown(value)} is not a duration; write e.g. 30s, 15m or 4h")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a duration; write a finite one, e.g. 30s")
        if value < 0:
            raise ValueError(f"{value!r} is negative; durations are 0 or more")
        return float(value)
    match = _DURATION.match(value.strip()) if len(value) <= _LONGEST else None
    if not match:
        raise ValueError(f"{_shown(value)} is not a duration; write e.g. 30s, 15m or 4h")
    return float(match.group(0).rstrip("mshd ")) * _UNITS[match.group(1)]


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"
