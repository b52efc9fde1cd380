"""The inventory's shared value vocabulary: JSON Schema fragments every check family uses.

One definition per kind of value (a duration, a port, a host address, an endpoint, a URL), so
a mistake is caught the same way wherever it is written, including in ``site:`` entries no check
uses. Every pattern is anchored with ``\\A``/``\\Z`` (``$`` lets a trailing newline through), is
linear-time (no nested or adjacent unbounded repetition) and is bounded in length.

No import of the check registry here: check families import this module.
"""

from __future__ import annotations

from typing import Any

# Ceiling of every timeout and deadline: a day. Past it a value is a typo (4000h), and a
# timeout that never ends is a hang, not a check.
MAX_TIMEOUT_SECONDS = 86400.0
# RTO/RPO may legitimately be days; a year is past any drill.
MAX_OBJECTIVE_SECONDS = 366 * 86400.0

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
# Loose on purpose (the loader's format checker parses it with ipaddress): hex, ':' and a dotted
# tail; nothing a shell or ssh_config would read as syntax.
IPV6 = r"[0-9A-Fa-f:]{2,39}(?:\.[0-9.]{7,15})?"
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
# RFC 1123 names; the last label is not all digits, so 999.1.1.1 is neither a name nor an IP.
HOSTNAME = rf"(?:{_LABEL}\.){{0,126}}(?=[A-Za-z0-9_-]*[A-Za-z_-]){_LABEL}\.?"
PORT_NUMBER = (r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]"
               r"|6553[0-5])")
_HOST_OR_BRACKETED = rf"(?:{IPV4}|\[{IPV6}\]|{HOSTNAME})"

DURATION_UNITS = r"(?:ms|s|m|h|d)"
# Digits, an optional fraction, an optional single space, an optional unit: linear, bounded.
DURATION_TEXT = rf"\A[0-9]{{1,9}}(?:\.[0-9]{{1,9}})? ?{DURATION_UNITS}?\Z"
DURATION_TEXT_WITH_UNIT = rf"\A[0-9]{{1,9}}(?:\.[0-9]{{1,9}})? ?{DURATION_UNITS}\Z"

NAME_PATTERN = r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z"

NAME: dict[str, Any] = {
    "type": "string", "pattern": NAME_PATTERN,
    "x-expect": "a name of letters, digits, '.', '-' and '_' (at most 128)",
}
PORT: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 65535,
                        "x-expect": "a port number from 1 to 65535"}
HOST_ADDRESS: dict[str, Any] = {
    "anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"},
              {"type": "string", "maxLength": 253, "pattern": rf"\A{HOSTNAME}\Z"}],
    "x-expect": "a host name (app01.corp.example) or an IP address (10.0.0.1), without a port",
}
ENDPOINT: dict[str, Any] = {
    "type": "string", "pattern": rf"\A{_HOST_OR_BRACKETED}:{PORT_NUMBER}\Z",
    "x-expect": "host:port with a port from 1 to 65535, e.g. 10.77.0.42:8443",
}
RESOLVER: dict[str, Any] = {
    "type": "string", "pattern": rf"\A(?:{IPV4}|\[{IPV6}\])(?::{PORT_NUMBER})?\Z",
    "x-expect": "an IP address, optionally with :port (1-65535), e.g. 10.77.0.53:5353",
}
URL: dict[str, Any] = {
    "type": "string",
    "pattern": rf"\Ahttps?://{_HOST_OR_BRACKETED}(?::{PORT_NUMBER})?(?:/[^\s]{{0,2000}})?\Z",
    "x-expect": "an http(s) URL with a valid host and port, e.g. https://drs.eu-west-1."
                "amazonaws.com",
}
# What a host runs: decides the shell its commands are written for (sh or PowerShell).
PLATFORMS = ("linux", "windows")
PLATFORM: dict[str, Any] = {"enum": list(PLATFORMS),
                            "x-expect": "linux or windows (what the host runs; default linux)"}
# [user@]address[:port] of a jump host that is not an inventory host, or an inventory host name.
JUMP: dict[str, Any] = {
    "anyOf": [{"type": "string",
               "pattern": rf"\A(?:[A-Za-z0-9_][A-Za-z0-9_.-]{{0,31}}@)?{_HOST_OR_BRACKETED}"
                          rf"(?::{PORT_NUMBER})?\Z"},
              NAME, {"type": "null"}],
    "x-expect": "an inventory host name, user@host:port, or null (no jump host)",
}


def duration(maximum: float = MAX_TIMEOUT_SECONDS, example: str = "30s, 15m or 4h",
             unit_required: bool = False) -> dict[str, Any]:
    """A finite, positive duration of at most ``maximum`` seconds. A bare number is seconds
    unless ``unit_required`` (RTO/RPO: ``rto: 4`` meant hours more often than seconds)."""
    text = {"type": "string", "maxLength": 24,
            "pattern": DURATION_TEXT_WITH_UNIT if unit_required else DURATION_TEXT}
    if unit_required:
        return {**text, "x-expect": f"a duration with its unit, e.g. {example}",
                "x-max-seconds": maximum}
    return {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": maximum}, text],
            "x-expect": f"a duration such as {example} (more than 0, at most "
                        f"{_plain(maximum)})",
            "x-max-seconds": maximum}


def _plain(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:g} days" if days > 1 else f"{seconds / 3600:g}h"


TIMEOUT: dict[str, Any] = duration()
OBJECTIVE: dict[str, Any] = duration(MAX_OBJECTIVE_SECONDS, "4h or 15m", unit_required=True)
