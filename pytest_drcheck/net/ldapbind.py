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
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from cryptography import x509
from ldap3 import ANONYMOUS, BASE, LEVEL, NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException

from pytest_drcheck.durations import format_duration
from pytest_drcheck.model import CouldNotObserve
from pytest_drcheck.net.ldapresult import (
    BOUND,
    ERROR,
    MODE_LABELS,
    PPOLICY_OID,
    REFUSED,
    TIMED_OUT,
    TLS_NAME_MISMATCH,
    TLS_UNTRUSTED,
    UNREACHABLE,
    BindOutcome,
    BindRequest,
    SearchSpec,
    classify_result,
    one_line,
    scrub,
)
from pytest_drcheck.targets.base import CommandResult, Stream, StreamError, Target
from pytest_drcheck.targets.forward import local_forward

# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH_CODES = (62, 64)
# How long a session that ended in an error lets the instance connection's teardown finish
# before asking whether it was lost (see Target.connection_lost).
LOST_GRACE_SECONDS = 0.5


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

    def resolve(self, name: str, timeout: float) -> tuple[str, ...]:
        # The wrapped target's answer (and its cache): the first stream already used it.
        return self._target.resolve(name, timeout)

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
    first = _FirstStream(target, target.open_stream(host, port, connect_timeout))
    try:
        with local_forward(first, host, port, connect_timeout) as address:
            yield address
    finally:
        first.close()


# --- TLS -------------------------------------------------------------------------------------


class CheckedTls(Tls):  # type: ignore[misc]
    """ldap3's Tls, but verified by OpenSSL with the server's name (ldap3 would check the name
    it connected to: the relay's 127.0.0.1). Keeps what went wrong for the report."""

    def __init__(self, server_name: str, ca_bundle: str | None, verify: bool) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE)
        self.server_name = server_name
        self.ca_bundle = ca_bundle
        self.verify = verify
        self.failure: BaseException | None = None
        # True when the failure is the CA bundle's (before any byte went to the server).
        self.bundle_failed = False
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
        except (OSError, ssl.SSLError) as exc:
            self.failure, self.bundle_failed = exc, True
            raise
        try:
            wrapped = context.wrap_socket(connection.socket, server_hostname=self.server_name,
                                          do_handshake_on_connect=True)
        except BaseException as exc:
            self.failure = exc
            raise
        self.version = wrapped.version()
        self.peer_der = wrapped.getpeercert(binary_form=True)
        connection.socket = wrapped


def describe_certificate(der: bytes) -> str:
    """'CN=dc01.corp.example (names dc01.corp.example) issued by CN=lab CA, until 2027-01-01'."""
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


def _tls_outcome(failure: BaseException, request: BindRequest, timeout: float,
                 bundle_failed: bool = False) -> tuple[str, str]:
    server = request.server
    if bundle_failed:
        if isinstance(failure, ssl.SSLError):
            why = failure.reason or one_line(str(failure))
            return ERROR, (f"the CA bundle {request.ca_bundle} holds no PEM certificate "
                           f"({why}); point ca_bundle at the CA's PEM file")
        if isinstance(failure, OSError) and failure.strerror:
            return ERROR, f"cannot read the CA bundle {request.ca_bundle}: {failure.strerror}"
    if isinstance(failure, ssl.SSLCertVerificationError):
        reason = failure.verify_message or str(failure)
        if failure.verify_code in _NAME_MISMATCH_CODES:
            return TLS_NAME_MISMATCH, f"not valid for {server}"
        return TLS_UNTRUSTED, reason
    if _is_timeout(failure):
        return TIMED_OUT, f"no answer to the TLS handshake within {format_duration(timeout)}"
    return ERROR, f"TLS handshake failed: {one_line(str(failure))}"


def whole_seconds(seconds: float) -> int:
    """ldap3 packs its receive timeout into SO_RCVTIMEO as whole seconds: round down (stay in
    the check's time), at least 1."""
    return max(1, math.floor(seconds))


def _open_connection(address: tuple[str, int], request: BindRequest, user: str | None,
                     password: str | None, tls: Any, receive_timeout: int) -> Any:
    server = Server(address[0], port=address[1], use_ssl=request.mode == "ldaps", tls=tls,
                    get_info=NONE, connect_timeout=request.connect_timeout)
    return Connection(server, user=user, password=password,
                      authentication=SIMPLE if user is not None else ANONYMOUS,
                      receive_timeout=receive_timeout, raise_exceptions=False,
                      read_only=True, auto_referrals=False)


def _close(connection: Any) -> None:
    with contextlib.suppress(Exception):
        connection.unbind()


def bind(target: Target, request: BindRequest, password: str) -> BindOutcome:
    """Bind as ``request.user`` from the target's position. Network trouble is an outcome
    (``observed`` False when the server never answered); only a name that the target could
    not resolve raises (its CouldNotObserve)."""
    started = time.monotonic()

    def elapsed() -> float:
        return time.monotonic() - started

    def done(outcome: str, summary: str, **extra: Any) -> BindOutcome:
        return BindOutcome(outcome, scrub(summary, password), elapsed(), **extra)

    tls = CheckedTls(request.server, request.ca_bundle, True) if request.mode != "plain" \
        else None
    with contextlib.ExitStack() as stack:
        try:
            address = stack.enter_context(
                relayed(target, request.server, request.port, request.connect_timeout))
        except CouldNotObserve:
            # The target could not resolve the server's name on the instance: that, not a
            # connection outcome, is the cause (even if it is also a StreamError).
            raise
        except StreamError as exc:
            if exc.outcome == "timed out":
                return done(TIMED_OUT, "no TCP connection within "
                                       f"{format_duration(request.connect_timeout)}",
                            observed=False)
            if exc.outcome in ("refused", "unreachable"):
                return done(REFUSED if exc.outcome == "refused" else UNREACHABLE, "",
                            observed=False)
            return done(ERROR, f"cannot connect: {one_line(str(exc))}", observed=False)
        wait = whole_seconds(request.timeout - elapsed())
        connection = _open_connection(address, request, request.user, password, tls, wait)
        stack.callback(_close, connection)
        outcome = _bind_on(connection, request, tls, password, done, wait)
        if outcome.outcome in (ERROR, TIMED_OUT):
            # The relay ends a session when its tunnel ends: if the connection to the instance
            # went with it, that, not the server, is what was observed.
            lost = target.unwrap().connection_lost(LOST_GRACE_SECONDS)
            if lost is not None:
                raise CouldNotObserve(lost)
        return outcome


def _bind_on(connection: Any, request: BindRequest, tls: Any, password: str,
             done: Callable[..., BindOutcome], wait: int) -> BindOutcome:
    try:
        connection.open(read_server_info=False)
        if request.mode == "starttls":
            connection.start_tls(read_server_info=False)
        bound = connection.bind(controls=[(PPOLICY_OID, False, None)])
    except (LDAPException, OSError) as exc:
        if tls is not None and tls.failure is not None:
            outcome, reason = _tls_outcome(tls.failure, request, wait, tls.bundle_failed)
            return done(outcome, reason, details={"tls_error": one_line(str(tls.failure))},
                        observed=outcome != TIMED_OUT and not tls.bundle_failed)
        if _is_timeout(exc):
            return done(TIMED_OUT, f"no LDAP answer within {format_duration(wait)}",
                        observed=False)
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
            tls = CheckedTls(request.server, None, False)
            connection = _open_connection(address, request, None, None, tls, whole_seconds(
                request.timeout - (time.monotonic() - started)))
            try:
                connection.open(read_server_info=False)
                if request.mode == "starttls":
                    connection.start_tls(read_server_info=False)
            finally:
                _close(connection)
            return describe_certificate(tls.peer_der) if tls.peer_der else None
    except Exception:  # a diagnostic only: the verdict is already made
        return None
