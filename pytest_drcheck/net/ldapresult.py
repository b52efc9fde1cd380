"""LDAP bind outcomes: the words for them, and what a server's answer means (no I/O, no
ldap3 import: the check's schema and the unit tests use this without the heavy part).

The password is never an input here except to ``scrub`` it out of text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_drcheck.durations import format_duration

# Outcome tokens: stable, for evidence and for ``expect``.
BOUND = "bound"
INVALID_CREDENTIALS = "invalid-credentials"
ACCOUNT_PROBLEM = "account-problem"
TLS_UNTRUSTED = "tls-untrusted"
TLS_NAME_MISMATCH = "tls-name-mismatch"
REFUSED = "refused"
TIMED_OUT = "timed-out"
UNREACHABLE = "unreachable"
STRONG_AUTH_REQUIRED = "strong-auth-required"
ERROR = "error"

MODES = ("ldaps", "starttls", "plain")
# What each outcome is called in a report line: "<label>: <reason>".
OUTCOME_LABELS: Mapping[str, str] = {
    BOUND: "bound",
    INVALID_CREDENTIALS: "invalid credentials",
    ACCOUNT_PROBLEM: "account problem",
    TLS_UNTRUSTED: "certificate not trusted",
    TLS_NAME_MISMATCH: "certificate name mismatch",
    REFUSED: "connection refused",
    TIMED_OUT: "timed out",
    UNREACHABLE: "unreachable",
    STRONG_AUTH_REQUIRED: "strong auth required",
    ERROR: "error",
}
MODE_LABELS = {"ldaps": "LDAPS", "starttls": "StartTLS", "plain": "plain LDAP"}
PPOLICY_OID = "1.3.6.1.4.1.42.2.27.8.5.1"
_AD_DATA = re.compile(r"\bdata ([0-9a-fA-F]{2,8})\b")
# Active Directory's sub-codes of invalidCredentials (the "data NNN" in the diagnostic text).
AD_ACCOUNT_CODES: Mapping[str, str] = {
    "530": "logon not permitted at this time",
    "531": "logon not permitted from this workstation",
    "532": "password expired",
    "533": "account disabled",
    "568": "too many security IDs in the token",
    "701": "account expired",
    "773": "password must be changed",
    "775": "account locked out",
}
AD_CREDENTIAL_CODES: Mapping[str, str] = {
    "52e": "wrong user name or password",
    "525": "no such user",
}
PPOLICY_ERRORS = ("password expired", "account locked", "password must be changed after reset",
                  "password change not allowed", "old password required",
                  "insufficient password quality", "password too short", "password too young",
                  "password in history")
# confidentialityRequired (13, OpenLDAP's "security simple_bind") and strongerAuthRequired
# (8, Active Directory without TLS): both say "not like this", not "wrong password".
_STRONG_AUTH_CODES = (8, 13)
_INVALID_CREDENTIALS = 49


@dataclass(frozen=True)
class SearchSpec:
    base: str
    filter: str
    scope: str = "sub"  # base | one | sub


@dataclass(frozen=True)
class BindRequest:
    server: str  # name the instance connects to and the certificate must carry
    port: int
    mode: str
    user: str
    ca_bundle: str | None
    connect_timeout: float
    timeout: float
    search: SearchSpec | None = None


@dataclass(frozen=True)
class BindOutcome:
    outcome: str
    # The words after the outcome's label, one line, never the password: for a bind,
    # "as uid=drcheck,... over LDAPS (TLSv1.3)"; for a refusal, "".
    summary: str
    seconds: float
    tls_version: str | None = None
    certificate: str | None = None
    result_code: int | None = None
    diagnostic: str | None = None
    entries: tuple[str, ...] = ()
    search_problem: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    # False when the bind could not be observed at all: no TCP connection, no answer to the
    # TLS handshake or to the bind in time, or no CA bundle to verify the server with. The
    # outcome and summary then say why; nothing is known about the server's verdict.
    observed: bool = True


# --- pure parts: classification of what the server said --------------------------------------


def decode_ppolicy(value: bytes) -> tuple[str | None, str | None]:
    """(warning, error) of a password-policy response control value (draft-behera, BER).

    ``warning`` reads e.g. "password expires in 3600 s"; ``error`` one of PPOLICY_ERRORS.
    Malformed input gives (None, None): the control only adds detail, it never decides alone.
    """
    def tlv(data: bytes, at: int) -> tuple[int, bytes, int]:
        tag, length = data[at], data[at + 1]
        at += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(data[at:at + count], "big")
            at += count
        return tag, data[at:at + length], at + length

    warning = error = None
    try:
        tag, body, _ = tlv(value, 0)
        if tag != 0x30:
            return None, None
        at = 0
        while at < len(body):
            tag, content, at = tlv(body, at)
            if tag == 0xA0 and content:  # warning [0] CHOICE
                inner_tag, number, _ = tlv(content, 0)
                amount = int.from_bytes(number, "big", signed=True)
                if inner_tag == 0x80:
                    warning = f"password expires in {format_duration(amount)}"
                elif inner_tag == 0x81:
                    warning = f"{amount} grace logins left"
            elif tag == 0x81 and content:  # error [1] ENUMERATED
                code = int.from_bytes(content, "big")
                error = PPOLICY_ERRORS[code] if code < len(PPOLICY_ERRORS) else f"error {code}"
    except IndexError:
        return None, None
    return warning, error


def classify_result(result: Mapping[str, Any]) -> tuple[str, str]:
    """(outcome token, plain-words reason) of an ldap3 bind result dictionary."""
    code = int(result.get("result", -1))
    description = str(result.get("description", "")) or f"result {code}"
    message = str(result.get("message", "") or "").strip()
    warning, policy_error = None, None
    control = (result.get("controls") or {}).get(PPOLICY_OID)
    if control and isinstance(control.get("value"), bytes):
        warning, policy_error = decode_ppolicy(control["value"])
    if code == 0:
        if policy_error:  # bound, but the server allows nothing else until it is fixed
            return ACCOUNT_PROBLEM, f"{policy_error} (password policy)"
        return BOUND, warning or ""
    if code in _STRONG_AUTH_CODES:
        return STRONG_AUTH_REQUIRED, f"{description}: {message}" if message else description
    if code == _INVALID_CREDENTIALS:
        if policy_error:
            return ACCOUNT_PROBLEM, f"{policy_error} (password policy)"
        match = _AD_DATA.search(message)
        if match:
            data = match.group(1).lower()
            if data in AD_ACCOUNT_CODES:
                return ACCOUNT_PROBLEM, f"{AD_ACCOUNT_CODES[data]} (AD data {data})"
            words = AD_CREDENTIAL_CODES.get(data, "rejected")
            return INVALID_CREDENTIALS, f"{words} (AD data {data})"
        said = f"; {message}" if message else ""
        return INVALID_CREDENTIALS, f"the server rejects the name or password (result 49{said})"
    return ERROR, f"{description}" + (f": {message}" if message else "")


def scrub(text: str, secret: str | None) -> str:
    """The text with every occurrence of the secret replaced (defence in depth)."""
    if secret and len(secret) >= 3:
        return text.replace(secret, "***")
    return text


def one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def escape_filter_value(value: str) -> str:
    """RFC 4515 escaping of a value placed inside a search filter."""
    out = []
    for char in value:
        if char in "*()\\\x00":
            out.append(f"\\{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def entry_summary(entries: Sequence[str], limit: int = 3) -> str:
    shown = "; ".join(entries[:limit])
    more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
    return shown + more
