"""A real LDAP simple bind (ldap3) from a target's network position, told apart by outcome.

The TCP connection is opened by the target (``open_stream``: SSH direct-tcpip, so the instance
resolves the server's name and connects) and handed to ldap3 through a loopback relay, because
ldap3 insists on a socket of its own. TLS is verified by OpenSSL against the given CA bundle
with the server's *name* checked (not the relay's 127.0.0.1).

The password is an argument of ``bind`` only: it never enters a result, a message, a log line
or an exception raised from here, and every text taken from the server is scrubbed of it.
"""

from __future__ import annotations

import contextlib
import math
import re
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_drcheck.durations import format_duration
from pytest_drcheck.targets.base import CommandResult, Stream, StreamError, Target

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
# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH_CODES = (62, 64)
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


# --- the relay -------------------------------------------------------------------------------


class _FirstStream(Target):
    """Hands the relay the stream we already opened (so refused and timed out are known
    before ldap3 starts); any further connection the client makes is opened normally."""

    def __init__(self, target: Target, stream: Stream) -> None:
        super().__init__(target.name)
        self._target = target
        self._stream: Stream | None = stream

    @property
    def vantage(self) -> str:
        return self._target.vantage

    def connect(self) -> None:
        self._target.connect()

    def run(self, command: str, timeout: float) -> CommandResult:
        return self._target.run(command, timeout)

    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        stream, self._stream = self._stream, None
        if stream is not None:
            return stream
        return self._target.open_stream(host, port, timeout)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


@contextlib.contextmanager
def relayed(target: Target, host: str, port: int, connect_timeout: float
            ) -> Iterator[tuple[str, int]]:
    """A loopback address whose connections the target makes to host:port.
    Raises StreamError (refused, timed out, unreachable) before yielding."""
    from pytest_drcheck.targets.forward import local_forward

    first = _FirstStream(target, target.open_stream(host, port, connect_timeout))
    try:
        with local_forward(first, host, port, connect_timeout) as address:
            yield address
    finally:
        first.close()


# --- TLS -------------------------------------------------------------------------------------


def _tls_class() -> type[Any]:
    from ldap3 import Tls

    class CheckedTls(Tls):  # type: ignore[misc]
        """ldap3's Tls, but verified by OpenSSL with the server's name (ldap3 would check the
        name it connected to: the relay's 127.0.0.1). Keeps what went wrong for the report."""

        def __init__(self, server_name: str, ca_bundle: str | None, verify: bool) -> None:
            super().__init__(validate=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE)
            self.server_name = server_name
            self.ca_bundle = ca_bundle
            self.verify = verify
            self.failure: BaseException | None = None
            self.version: str | None = None
            self.peer_der: bytes | None = None

        def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
            try:
                if self.verify:
                    context = ssl.create_default_context(cafile=self.ca_bundle)
                else:
                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                wrapped = context.wrap_socket(connection.socket, server_hostname=self.server_name,
                                              do_handshake_on_connect=True)
            except BaseException as exc:
                self.failure = exc
                raise
            self.version = wrapped.version()
            self.peer_der = wrapped.getpeercert(binary_form=True)
            connection.socket = wrapped

    return CheckedTls


def describe_certificate(der: bytes) -> str:
    """'CN=dc01.corp.example (names dc01.corp.example) issued by CN=lab CA, until 2027-01-01'."""
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return "an unreadable certificate"
    try:
        names = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    shown = f" (names {', '.join(names)})" if names else " (no DNS names)"
    until = cert.not_valid_after_utc.date().isoformat()
    return (f"{cert.subject.rfc4514_string() or 'no subject'}{shown} issued by "
            f"{cert.issuer.rfc4514_string() or 'no issuer'}, valid until {until}")


# --- the bind --------------------------------------------------------------------------------


def _exception_text(exc: BaseException) -> str:
    parts = [str(exc)]
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) not in parts[0]:
        parts.append(str(cause))
    return one_line(" / ".join(p for p in parts if p))


def _is_timeout(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError) or "timed out" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _tls_outcome(failure: BaseException, server: str, timeout: float) -> tuple[str, str]:
    if isinstance(failure, ssl.SSLCertVerificationError):
        reason = failure.verify_message or str(failure)
        if failure.verify_code in _NAME_MISMATCH_CODES:
            return TLS_NAME_MISMATCH, f"not valid for {server}"
        return TLS_UNTRUSTED, reason
    if isinstance(failure, FileNotFoundError | IsADirectoryError | PermissionError):
        return ERROR, f"cannot read the CA bundle: {failure.strerror}"
    if isinstance(failure, ssl.SSLError) and "PEM" in str(failure):
        return ERROR, "the CA bundle holds no usable PEM certificate"
    if _is_timeout(failure):
        return TIMED_OUT, f"no answer to the TLS handshake within {format_duration(timeout)}"
    return ERROR, f"TLS handshake failed: {one_line(str(failure))}"


def _open_connection(address: tuple[str, int], request: BindRequest, user: str | None,
                     password: str | None, tls: Any, receive_timeout: float) -> Any:
    from ldap3 import ANONYMOUS, NONE, SIMPLE, Connection, Server

    server = Server(address[0], port=address[1], use_ssl=request.mode == "ldaps", tls=tls,
                    get_info=NONE, connect_timeout=request.connect_timeout)
    return Connection(server, user=user, password=password,
                      authentication=SIMPLE if user is not None else ANONYMOUS,
                      # ldap3 packs it into SO_RCVTIMEO as a whole number of seconds.
                      receive_timeout=max(1, math.ceil(receive_timeout)), raise_exceptions=False,
                      read_only=True, auto_referrals=False)


def _close(connection: Any) -> None:
    with contextlib.suppress(Exception):
        connection.unbind()


def bind(target: Target, request: BindRequest, password: str) -> BindOutcome:
    """Bind as ``request.user`` from the target's position; never raises for network trouble."""
    started = time.monotonic()

    def elapsed() -> float:
        return time.monotonic() - started

    def done(outcome: str, summary: str, **extra: Any) -> BindOutcome:
        return BindOutcome(outcome, scrub(summary, password), elapsed(), **extra)

    tls = _tls_class()(request.server, request.ca_bundle, True) if request.mode != "plain" \
        else None
    with contextlib.ExitStack() as stack:
        try:
            address = stack.enter_context(
                relayed(target, request.server, request.port, request.connect_timeout))
        except StreamError as exc:
            if exc.outcome == "timed out":
                return done(TIMED_OUT, "no TCP connection within "
                                       f"{format_duration(request.connect_timeout)}")
            if exc.outcome in ("refused", "unreachable"):
                return done(REFUSED if exc.outcome == "refused" else UNREACHABLE, "")
            return done(ERROR, f"cannot connect: {one_line(str(exc))}")
        connection = _open_connection(address, request, request.user, password, tls,
                                      request.timeout - elapsed())
        stack.callback(_close, connection)
        return _bind_on(connection, request, tls, password, done)


def _bind_on(connection: Any, request: BindRequest, tls: Any, password: str,
             done: Callable[..., BindOutcome]) -> BindOutcome:
    from ldap3.core.exceptions import LDAPException

    try:
        connection.open(read_server_info=False)
        if request.mode == "starttls":
            connection.start_tls(read_server_info=False)
        bound = connection.bind(controls=[(PPOLICY_OID, False, None)])
    except (LDAPException, OSError) as exc:
        if tls is not None and tls.failure is not None:
            outcome, reason = _tls_outcome(tls.failure, request.server, request.timeout)
            return done(outcome, reason, details={"tls_error": one_line(str(tls.failure))})
        if _is_timeout(exc):
            return done(TIMED_OUT, "no LDAP answer within "
                                   f"{format_duration(request.timeout)}")
        text = _exception_text(exc)
        if request.mode == "starttls" and "startTLS failed" in text:
            return done(ERROR, f"the server refused StartTLS ({text.split(' - ')[-1]})")
        return done(ERROR, f"LDAP session failed: {text}")
    result: Mapping[str, Any] = connection.result or {}
    outcome, reason = classify_result(result)
    version = tls.version if tls is not None else None
    certificate = describe_certificate(tls.peer_der) if tls is not None and tls.peer_der else None
    extra: dict[str, Any] = {"tls_version": version, "certificate": certificate,
                             "result_code": int(result.get("result", -1)),
                             "diagnostic": scrub(one_line(str(result.get("message", ""))),
                                                 password) or None}
    if outcome != BOUND or not bound:
        return done(outcome, reason, **extra)
    entries: tuple[str, ...] = ()
    problem = None
    if request.search is not None:
        entries, problem = _search(connection, request.search)
    via = MODE_LABELS[request.mode] + (f" ({version})" if version else "")
    summary = f"as {request.user} over {via}" + (f"; {reason}" if reason else "")
    return done(BOUND, summary, entries=entries, search_problem=problem, **extra)


def _search(connection: Any, spec: SearchSpec) -> tuple[tuple[str, ...], str | None]:
    from ldap3 import BASE, LEVEL, SUBTREE
    from ldap3.core.exceptions import LDAPException

    scope = {"base": BASE, "one": LEVEL, "sub": SUBTREE}[spec.scope]
    try:
        connection.search(spec.base, spec.filter, search_scope=scope, attributes=["1.1"],
                          size_limit=20)
    except (LDAPException, OSError) as exc:
        if _is_timeout(exc):
            return (), "the search timed out"
        return (), f"the search failed: {_exception_text(exc)}"
    result: Mapping[str, Any] = connection.result or {}
    code = int(result.get("result", -1))
    entries = tuple(str(r["dn"]) for r in (connection.response or [])
                    if r.get("type") == "searchResEntry")
    # sizeLimitExceeded still returns entries; noSuchObject means the base does not exist.
    if code not in (0, 4):
        message = one_line(str(result.get("message", "") or ""))
        return entries, f"the search failed: {result.get('description', code)}" + (
            f" ({message})" if message else "")
    return entries, None


def peer_certificate(target: Target, request: BindRequest) -> str | None:
    """The certificate the server presents, read without trusting it (no bind, no password):
    says *which* certificate was not trusted or did not match. Best effort, None on failure."""
    if request.mode == "plain":
        return None
    started = time.monotonic()
    try:
        with relayed(target, request.server, request.port, request.connect_timeout) as address:
            tls = _tls_class()(request.server, None, False)
            connection = _open_connection(address, request, None, None, tls,
                                          request.timeout - (time.monotonic() - started))
            try:
                connection.open(read_server_info=False)
                if request.mode == "starttls":
                    connection.start_tls(read_server_info=False)
            finally:
                _close(connection)
            return describe_certificate(tls.peer_der) if tls.peer_der else None
    except Exception:  # a diagnostic only: the verdict is already made
        return None


def entry_summary(entries: Sequence[str], limit: int = 3) -> str:
    shown = "; ".join(entries[:limit])
    more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
    return shown + more
