"""Durations as people write them in inventories and options: 90, 90s, 1.5m, 4h, 250ms, 1d."""

from __future__ import annotations

import re

DURATION_PATTERN = r"^\s*(\d+(\.\d+)?)\s*(ms|s|m|h|d)?\s*$"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: str | float | int) -> float:
    """Seconds. Raises ValueError with a message that shows the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 15m or 4h")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{value!r} is negative; durations are 0 or more")
        return float(value)
    match = re.match(DURATION_PATTERN, value)
    if not match:
        raise ValueError(f"'{value}' is not a duration; write e.g. 30s, 15m or 4h")
    return float(match.group(1)) * _UNITS[match.group(3)]


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"
