"""SSH target: one paramiko connection per host, shared by every check of the host.

The connection is opened lazily and exactly once (concurrent callers wait for the one attempt and
share its outcome), host keys are checked strictly against one known_hosts file, every wait is
bounded, and commands and TCP streams (``direct-tcpip``) are multiplexed over the one transport.
"""

from __future__ import annotations

import getpass
import socket
import threading
import time
from collections.abc import Callable

import paramiko

from pytest_drcheck.durations import format_duration
from pytest_drcheck.targets.base import CommandResult, Stream, StreamError, Target, TargetError
from pytest_drcheck.targets.dial import open_resolved
from pytest_drcheck.targets.names import parse_getent
from pytest_drcheck.targets.ssh import connection
from pytest_drcheck.targets.ssh.channels import TrackingTransport
from pytest_drcheck.targets.ssh.config import proxy_jump_chain, resolve_endpoint
from pytest_drcheck.targets.ssh.errors import (
    ConnectMessages,
    OpenRejected,
    OpenTimedOut,
    TransportGone,
    classify_open_failure,
)
from pytest_drcheck.targets.ssh.exec import (
    SessionStream,
    run_command,
    start_command,
    transport_gone,
)
from pytest_drcheck.targets.ssh.resolver import HelperGone, ResolverHelper, can_ask, helper_script
from pytest_drcheck.targets.ssh.settings import Endpoint, SshSettings
from pytest_drcheck.targets.ssh.slots import SessionSlots

# The resolver helper takes one session slot for good; with fewer slots it would starve commands.
_HELPER_MIN_SESSIONS = 3


class SshTarget(Target):
    """A host reached with paramiko. Safe to share between threads."""

    def __init__(self, settings: SshSettings) -> None:
        super().__init__(settings.name)
        self.settings = settings
        self._messages = ConnectMessages(settings)
        # Serialises connection attempts; held for the whole attempt so that later callers wait
        # for its outcome instead of starting their own.
        self._connect_lock = threading.Lock()
        # Guards the fields below; never held during network I/O.
        self._state = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._failure: str | None = None
        self._closed = False
        self._abort_attempt: Callable[[], None] | None = None
        self._endpoint_cache: Endpoint | None = None
        self._resolve_lock = threading.Lock()
        self._owned_jump: SshTarget | None = None
        self._sessions = SessionSlots(settings.max_sessions)
        # Name lookups (see resolver.py): started on the first lookup; _no_helper says why
        # lookups take the exec path instead.
        self._helper_lock = threading.Lock()
        self._helper: ResolverHelper | None = None
        self._no_helper: str | None = (
            None if settings.max_sessions >= _HELPER_MIN_SESSIONS else "too few sessions")

    def __repr__(self) -> str:
        return f"SshTarget({self.vantage})"

    # -- identity ----------------------------------------------------------------------------

    @property
    def vantage(self) -> str:
        try:
            endpoint = self._endpoint()
            user, host, port = endpoint.user, endpoint.hostname, endpoint.port
        except TargetError:  # an unreadable ssh_config is reported by connect(), not here
            user = self.settings.user or getpass.getuser()
            host, port = self.settings.address, self.settings.port or 22
        via = f" via {self._jump.name}" if self._jump is not None else ""
        return f"{self.name} (ssh {user}@{host}:{port}{via})"

    @property
    def _jump(self) -> SshTarget | None:
        return self.settings.jump or self._owned_jump

    def _endpoint(self) -> Endpoint:
        # Locked so that a ProxyJump chain is built once: connect() and close() must see the
        # same one.
        with self._resolve_lock:
            if self._endpoint_cache is None:
                endpoint = resolve_endpoint(self.settings)
                if endpoint.proxy_jump:
                    try:
                        self._owned_jump = proxy_jump_chain(
                            self.settings, endpoint.proxy_jump, SshTarget)
                    except ValueError:
                        raise TargetError(
                            f"{self.name}: ssh_config {self.settings.ssh_config} gives a jump "
                            f"host a Port that is not a number") from None
                self._endpoint_cache = endpoint
            return self._endpoint_cache

    # -- connection --------------------------------------------------------------------------

    @property
    def client(self) -> paramiko.SSHClient:
        """The connected, authenticated client (connects first if needed)."""
        self.connect()
        with self._state:
            client = self._client
        if client is None:
            raise TargetError(self._closed_message())
        return client

    @property
    def transport(self) -> paramiko.Transport:
        transport = self.client.get_transport()
        if transport is None:
            raise TargetError(self._closed_message())
        return transport

    def connect(self) -> None:
        if self._settled():
            return
        with self._connect_lock:
            if self._settled():
                return
            try:
                client = self._open()
            except TargetError as exc:
                with self._state:
                    closed = self._closed
                    if not closed:
                        self._failure = str(exc)
                if closed:
                    raise TargetError(self._closed_message()) from None
                raise
            with self._state:
                if not self._closed:
                    self._client = client
                    return
            client.close()
            raise TargetError(self._closed_message())

    def _settled(self) -> bool:
        """True when connected, False when no attempt was made; re-raises a remembered failure."""
        with self._state:
            if self._closed:
                raise TargetError(self._closed_message())
            if self._failure is not None:
                raise TargetError(self._failure)
            return self._client is not None

    def _closed_message(self) -> str:
        return f"{self.name}: the SSH connection was closed"

    def _open(self) -> paramiko.SSHClient:
        endpoint = self._endpoint()
        jump = self._jump
        if jump is not None:
            # The jump host's own connect_timeout bounds this; ours starts once it is up.
            self._connect_jump(jump)
        client = connection.new_client(self.settings, endpoint)
        # Before the clock starts: a secret store's latency is not the host's.
        password = connection.resolve_password(self.settings)
        deadline = time.monotonic() + self.settings.connect_timeout
        sock = self._open_socket(endpoint, jump, deadline)
        # paramiko bounds each phase separately; the watchdog bounds them together by tearing
        # the transport down at the deadline, which makes whatever phase is waiting fail.
        watchdog = connection.Watchdog(deadline - time.monotonic(),
                                       lambda: connection.abort(client, sock))
        with self._state:
            self._abort_attempt = watchdog.fire
        try:
            connection.handshake(client, sock, endpoint, password, deadline, self.name)
        except Exception as exc:
            fired = not watchdog.disarm()
            phase = connection.phase(client)
            connection.abort(client, sock)
            client.close()
            # `from None`: the chain's frames hold the resolved password as a local variable.
            raise self._messages.for_exception(exc, endpoint, fired, phase) from None
        finally:
            with self._state:
                self._abort_attempt = None
        if not watchdog.disarm():
            client.close()
            raise TargetError(self._messages.timed_out(endpoint, "while authenticating"))
        connection.keep_alive(client, connection.dead_after(self.settings.connect_timeout))
        return client

    def _open_socket(self, endpoint: Endpoint, jump: SshTarget | None, deadline: float
                     ) -> socket.socket | paramiko.Channel:
        if jump is not None:
            return self._through_jump(jump, endpoint, max(0.05, deadline - time.monotonic()))
        return connection.open_socket(self._messages, endpoint, deadline,
                                      connection.dead_after(self.settings.connect_timeout))

    def _connect_jump(self, jump: SshTarget) -> None:
        try:
            jump.connect()
        except TargetError as exc:
            raise TargetError(f"{self.name}: jump host {jump.name} failed: {exc}") from None

    def _through_jump(self, jump: SshTarget, endpoint: Endpoint, timeout: float
                      ) -> paramiko.Channel:
        where = (f"{self.name}: jump host {jump.name} could not connect to "
                 f"{endpoint.hostname}:{endpoint.port}")
        try:
            return jump._tcp_channel(endpoint.hostname, endpoint.port, timeout)
        except OpenRejected as exc:
            raise TargetError(f"{where}: {exc.describe()}") from None
        except OpenTimedOut:
            raise TargetError(self._messages.timed_out(
                endpoint, f"through jump host {jump.name}")) from None
        except TargetError as exc:
            raise TargetError(f"{self.name}: jump host {jump.name} failed: {exc}") from None

    # -- commands ----------------------------------------------------------------------------

    def run(self, command: str, timeout: float) -> CommandResult:
        return run_command(self, command, timeout).on(self.name, timeout)

    def open_process(self, command: str, timeout: float) -> Stream:
        """The command's stdin/stdout as a session channel that stays open (it holds one of
        the host's session slots until closed)."""
        transport = self.live_transport()
        deadline = time.monotonic() + timeout
        if not self._sessions.acquire(timeout):
            raise StreamError("timed out", f"no free SSH session on {self.name} in time")
        try:
            chan = self.open_channel(transport, "session", None, timeout)
            if chan is None:
                raise StreamError("timed out",
                                  f"timed out opening an SSH session on {self.name}")
            try:
                started = start_command(self, transport, chan, command, deadline)
            except OpenRejected as exc:
                chan.close()
                raise StreamError("error", f"{self.name}: {exc.describe()}") from None
            if not started:
                chan.close()
                raise StreamError("timed out", f"timed out starting a command on {self.name}")
        except BaseException:
            self._sessions.release()
            raise
        return SessionStream(chan, self._sessions.release, self.lost_message)

    def acquire_session(self, patience: float) -> bool:
        return self._sessions.acquire(patience)

    def release_session(self) -> None:
        self._sessions.release()

    def live_transport(self) -> paramiko.Transport:
        transport = self.transport
        if not transport.is_active():
            raise TargetError(self.lost_message())
        return transport

    def connection_lost(self, grace: float) -> str | None:
        with self._state:
            client = self._client
        transport = client.get_transport() if client is not None else None
        if transport is None:
            return None  # never connected, or closed by us: not lost
        return self.lost_message() if transport_gone(transport, grace) else None

    def lost_message(self) -> str:
        with self._state:
            closed = self._closed
        if closed:
            return self._closed_message()
        endpoint = self._endpoint()
        return (f"{self.name}: the SSH connection to {endpoint.hostname}:{endpoint.port} was "
                "lost (host rebooted, sshd restarted, or the network dropped it)")

    def open_channel(self, transport: paramiko.Transport, kind: str,
                     dest: tuple[str, int] | None, timeout: float) -> paramiko.Channel | None:
        """A channel, or None when opening it timed out; raises OpenRejected if refused."""
        try:
            return self._open_tracked(transport, kind, dest, timeout)
        except OpenTimedOut:
            return None

    def _open_tracked(self, transport: paramiko.Transport, kind: str,
                      dest: tuple[str, int] | None, timeout: float) -> paramiko.Channel:
        """A channel; raises OpenRejected if refused, OpenTimedOut if not answered in time."""
        if not isinstance(transport, TrackingTransport):  # always ours: handshake builds it
            raise TargetError(f"{self.name}: unexpected transport {type(transport).__name__}")
        try:
            return transport.open_tracked(kind, dest, max(0.05, timeout))
        except TransportGone:
            raise TargetError(self.lost_message()) from None

    # -- names -------------------------------------------------------------------------------

    def _look_up(self, name: str, timeout: float) -> tuple[str, ...]:
        helper = self._resolver_helper(timeout) if can_ask(name) else None
        if helper is not None:
            try:
                result = helper.look_up(name, timeout)
            except HelperGone as exc:
                self._retire_helper(helper, str(exc))  # the exec path below still answers
            else:
                return parse_getent(name, self.name, result.on(self.name, timeout), timeout)
        return super()._look_up(name, timeout)

    def _resolver_helper(self, timeout: float) -> ResolverHelper | None:
        """The running helper, started on first use; None when lookups must use an exec."""
        with self._helper_lock:
            if self._helper is not None or self._no_helper is not None:
                return self._helper
            # The helper keeps one session for the life of the connection: it takes one of the
            # target's slots for good, so the host never sees more sessions than max_sessions.
            if not self._sessions.acquire(timeout):
                return None  # busy right now: an exec this time, the helper next time
            try:
                helper = self._start_helper(timeout)
            except TargetError as exc:
                helper, self._no_helper = None, str(exc)
            if helper is None:
                self._sessions.release()
            with self._state:
                if self._closed and helper is not None:
                    helper.close()
                    helper = None
            self._helper = helper
            return helper

    def _retire_helper(self, helper: ResolverHelper, why: str) -> None:
        """Forget a helper that ended (its session is gone): its slot is free again."""
        with self._helper_lock:
            if self._helper is not helper:
                return
            self._helper, self._no_helper = None, why
        helper.close()
        self._sessions.release()

    def _start_helper(self, timeout: float) -> ResolverHelper | None:
        transport = self.live_transport()
        deadline = time.monotonic() + timeout
        chan = self.open_channel(transport, "session", None, timeout)
        if chan is None:
            return None
        try:
            started = start_command(self, transport, chan, helper_script(self.getent), deadline)
        except OpenRejected as exc:
            chan.close()
            raise TargetError(exc.describe()) from None
        except TargetError:
            chan.close()
            raise
        if not started:
            chan.close()
            return None
        return ResolverHelper(chan, self.getent)

    # -- streams -----------------------------------------------------------------------------

    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        # Never a name to direct-tcpip: sshd would resolve it synchronously and stall every
        # other channel of the connection while the lookup hangs (see targets.names).
        return open_resolved(self, host, port, timeout,
                             lambda address, left, where: self._open_address(
                                 address, port, left, where))

    def _open_address(self, address: str, port: int, timeout: float, where: str) -> Stream:
        try:
            return self._tcp_channel(address, port, timeout)
        except OpenRejected as exc:
            raise StreamError(classify_open_failure(exc.text), f"{where}: {exc.describe()}"
                              ) from None
        except OpenTimedOut as exc:
            raise StreamError("timed out", f"{where}: timed out after {format_duration(timeout)}",
                              opened_late=exc.opened_late) from None

    def _tcp_channel(self, host: str, port: int, timeout: float) -> paramiko.Channel:
        """A direct-tcpip channel; raises OpenRejected, OpenTimedOut or TargetError."""
        return self._open_tracked(self.live_transport(), "direct-tcpip", (host, port), timeout)

    # -- teardown ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._state:
            if self._closed:
                return
            self._closed = True
            client, self._client = self._client, None
            abort = self._abort_attempt
        if abort is not None:
            abort()
        helper = self._helper
        if helper is not None:
            helper.close()
        if client is not None:
            # Commands in flight see their channels close and raise TargetError; nothing hangs.
            client.close()
        if self._owned_jump is not None:
            self._owned_jump.close()
