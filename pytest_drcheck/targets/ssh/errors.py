"""What went wrong, in one line each: channel-open outcomes and connection failures."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

import paramiko

from pytest_drcheck.durations import format_duration
from pytest_drcheck.targets.base import TargetError
from pytest_drcheck.targets.ssh.hostkeys import UnknownHostKey, host_key_name
from pytest_drcheck.targets.ssh.settings import Endpoint, SshSettings

OPEN_ADMINISTRATIVELY_PROHIBITED = 1
OPEN_CONNECT_FAILED = 2
UNREACHABLE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH}


class OpenRejected(Exception):
    """sshd refused to open a channel; ``text`` is its reason, ``code`` the RFC 4254 code."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text

    def describe(self) -> str:
        text = one_line(self.text) or "no reason given"
        if self.code == OPEN_ADMINISTRATIVELY_PROHIBITED:
            return (f"the host's sshd refused the channel ({text}); it may disallow forwarding "
                    "(AllowTcpForwarding, PermitOpen) or have too many sessions (MaxSessions)")
        if self.code == OPEN_CONNECT_FAILED:
            return text[:1].lower() + text[1:]
        return f"{text} (channel open failure code {self.code})"


class OpenTimedOut(Exception):
    """No answer to a channel open in time. ``opened_late()`` says, when asked later, whether
    the server confirmed the channel after all (the transport then closes it at once)."""

    def __init__(self, opened_late: Callable[[], bool]) -> None:
        super().__init__("timed out opening a channel")
        self.opened_late = opened_late


class TransportGone(Exception):
    pass


def classify_open_failure(text: str) -> str:
    """StreamError outcome from the text sshd sends with a refused direct-tcpip channel."""
    lowered = text.lower()
    if "connection refused" in lowered:
        return "refused"
    if any(s in lowered for s in ("no route to host", "network is unreachable",
                                  "host is unreachable")):
        return "unreachable"
    # OpenSSH's sshd says only "open failed" when connect() fails at once on the instance
    # (measured in the lab: no route to the destination network): nothing was sent.
    if lowered.strip() == "open failed":
        return "unreachable"
    if "timed out" in lowered:
        return "timed out"
    return "error"


def one_line(text: str) -> str:
    return " ".join(text.split())


def caused_by_timeout(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class ConnectMessages:
    """The one-line messages of a failed connection to one host."""

    def __init__(self, settings: SshSettings) -> None:
        self.settings = settings
        self.name = settings.name

    def for_exception(self, exc: Exception, endpoint: Endpoint, fired: bool, phase: str
                      ) -> TargetError:
        if isinstance(exc, TargetError):
            return exc
        if isinstance(exc, UnknownHostKey):
            return TargetError(self.unknown_key(exc, endpoint))
        if isinstance(exc, paramiko.BadHostKeyException):
            return TargetError(self.mismatch(exc, endpoint))
        if isinstance(exc, paramiko.AuthenticationException):
            return TargetError(self.auth(exc, endpoint))
        text = one_line(str(exc))
        if fired or caused_by_timeout(exc):
            return TargetError(self.timed_out(endpoint, phase))
        if phase.startswith("waiting for the SSH banner"):
            return TargetError(
                f"{self.name}: {endpoint.hostname}:{endpoint.port} closed the connection before "
                "sending an SSH banner; is it an SSH server (and is MaxStartups exhausted)?")
        if "No authentication methods" in text:
            return TargetError(
                f"{self.name}: no key or password to authenticate {endpoint.user}@"
                f"{endpoint.hostname}:{endpoint.port}; set identity_file or password")
        return TargetError(f"{self.name}: SSH connection to {endpoint.hostname}:{endpoint.port} "
                           f"failed: {type(exc).__name__}: {text or 'no detail'}")

    def timed_out(self, endpoint: Endpoint, where: str) -> str:
        return (f"{self.name}: timed out after {format_duration(self.settings.connect_timeout)} "
                f"connecting to {endpoint.hostname}:{endpoint.port} {where}")

    def refused(self, endpoint: Endpoint) -> str:
        return (f"{self.name}: connection refused by {endpoint.hostname}:{endpoint.port}; "
                f"is sshd running and listening on port {endpoint.port}?")

    def socket_error(self, endpoint: Endpoint, exc: OSError) -> str:
        where = f"{endpoint.hostname}:{endpoint.port}"
        if exc.errno in UNREACHABLE_ERRNOS:
            return (f"{self.name}: no route to host {where} ({exc.strerror}); check the address "
                    "and the routes between this runner and the host")
        return f"{self.name}: cannot connect to {where}: {exc.strerror or exc}"

    def known_hosts_path(self) -> str:
        return os.path.expanduser(self.settings.known_hosts)

    def unknown_key(self, exc: UnknownHostKey, endpoint: Endpoint) -> str:
        path = self.known_hosts_path()
        missing = "" if os.path.exists(path) else " (the file does not exist)"
        return (f"{self.name}: unknown host key for {exc.hostname} ({exc.key.get_name()} "
                f"{exc.key.fingerprint}): not in {path}{missing}; add it with "
                f"`ssh-keyscan -p {endpoint.port} {endpoint.hostname} >> {path}` (after checking "
                "the fingerprint) or set host_key_policy: accept-new")

    def mismatch(self, exc: paramiko.BadHostKeyException, endpoint: Endpoint) -> str:
        name = host_key_name(endpoint.hostname, endpoint.port)
        path = self.known_hosts_path()
        return (f"{self.name}: host key mismatch for {name}: presented {exc.key.get_name()} "
                f"{exc.key.fingerprint}, expected {exc.expected_key.get_name()} "
                f"{exc.expected_key.fingerprint} from {path}; if the instance was legitimately "
                f"rebuilt, update known_hosts (ssh-keygen -R '{name}' -f {path}, then add the new "
                "key), otherwise do not trust this host")

    def auth(self, exc: paramiko.AuthenticationException, endpoint: Endpoint) -> str:
        if self.settings.password is not None:
            how = "password" + (" and key " + ", ".join(endpoint.key_files)
                                if endpoint.key_files else "")
        elif endpoint.key_files:
            how = "key " + ", ".join(endpoint.key_files)
        else:
            how = "the SSH agent and ~/.ssh keys"
        allowed = ""
        if isinstance(exc, paramiko.BadAuthenticationType):
            allowed = f" (the server allows: {', '.join(exc.allowed_types)})"
        if isinstance(exc, paramiko.PasswordRequiredException):
            return (f"{self.name}: authentication failed for {endpoint.user}@{endpoint.hostname}:"
                    f"{endpoint.port}: the private key is encrypted; use an unencrypted key or "
                    "an agent")
        return (f"{self.name}: authentication failed for {endpoint.user}@{endpoint.hostname}:"
                f"{endpoint.port} with {how}{allowed}; check user and identity_file/password")
