"""SSH target: one paramiko connection per host, shared by every check of the host.

The connection is opened lazily and exactly once (concurrent callers wait for the one attempt and
share its outcome), host keys are checked strictly against one known_hosts file, every wait is
bounded, and commands and TCP streams (``direct-tcpip``) are multiplexed over the one transport.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import math
import os
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paramiko
from paramiko.common import MSG_CHANNEL_OPEN_FAILURE, MSG_CHANNEL_OPEN_SUCCESS

from pytest_drcheck.durations import format_duration
from pytest_drcheck.targets.base import CommandResult, Stream, StreamError, Target, TargetError

HOST_KEY_POLICIES = ("strict", "accept-new")
# Concurrent session channels per connection. OpenSSH refuses more than MaxSessions (10 by
# default), and a slot is freed only some time after its channel closed: at 10 a burst of short
# commands met ~1 refusal in 4 opens (retried, but wasted round trips), at 8 none in 300, with
# the same throughput. The two spare slots also leave room for testinfra on the same client.
DEFAULT_MAX_SESSIONS = 8
# Keeps NAT and stateful firewalls between the runner and the instance from dropping an idle
# connection during a long drill.
KEEPALIVE_SECONDS = 30
TIMEOUT_STATUS = 124
# The client-side deadline trails the remote `timeout` a little so that, when the host has
# coreutils, the command is stopped there first and its partial output and 124 come back.
CLIENT_GRACE_SECONDS = 0.25
# Pause between attempts to open a session that sshd refused for lack of a free slot.
SESSION_RETRY_SECONDS = 0.02
SESSION_RETRY_MAX_SECONDS = 0.5
_OPEN_CONNECT_FAILED = 2
_OPEN_ADMINISTRATIVELY_PROHIBITED = 1


@dataclass(frozen=True)
class SshSettings:
    """How to reach one host over SSH. Explicit values win over the ssh_config file's.

    ``port`` and ``user`` left as None take ssh_config's Port/User, else 22 and the local user
    name, as with OpenSSH; a value given here always wins. ``password`` is a callable so that
    the secret is fetched only when a connection needs it and is never in the settings' repr.
    """

    name: str
    address: str
    port: int | None = None
    user: str | None = None
    identity_file: str | None = None
    password: Callable[[], str] | None = field(default=None, repr=False, compare=False)
    known_hosts: str = "~/.ssh/known_hosts"
    host_key_policy: str = "strict"
    connect_timeout: float = 5.0
    ssh_config: str | None = None
    jump: SshTarget | None = field(default=None, compare=False)
    max_sessions: int = DEFAULT_MAX_SESSIONS

    def __post_init__(self) -> None:
        if self.host_key_policy not in HOST_KEY_POLICIES:
            raise ValueError(f"host_key_policy '{self.host_key_policy}' is not one of "
                             f"{', '.join(HOST_KEY_POLICIES)}")
        if self.max_sessions < 1:
            raise ValueError("max_sessions must be 1 or more")


@dataclass(frozen=True)
class _Endpoint:
    """Settings after ssh_config was applied: what the connection really uses."""

    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...]
    # A ProxyJump from ssh_config (only used when the settings name no jump).
    proxy_jump: str | None


class SshTarget(Target):
    """A host reached with paramiko. Safe to share between threads."""

    def __init__(self, settings: SshSettings) -> None:
        super().__init__(settings.name)
        self.settings = settings
        # Serialises connection attempts; held for the whole attempt so that later callers wait
        # for its outcome instead of starting their own.
        self._connect_lock = threading.Lock()
        # Guards the fields below; never held during network I/O.
        self._state = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._failure: str | None = None
        self._closed = False
        self._abort_attempt: Callable[[], None] | None = None
        self._endpoint_cache: _Endpoint | None = None
        self._resolve_lock = threading.Lock()
        self._owned_jump: SshTarget | None = None
        self._sessions = threading.BoundedSemaphore(settings.max_sessions)

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

    def _endpoint(self) -> _Endpoint:
        # Locked so that a ProxyJump chain is built once: connect() and close() must see the
        # same one.
        with self._resolve_lock:
            if self._endpoint_cache is None:
                endpoint = _resolve(self.settings)
                if endpoint.proxy_jump:
                    try:
                        self._owned_jump = _proxy_jump_chain(self.settings, endpoint.proxy_jump)
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
        client = self._new_client()
        # Before the clock starts: a secret store's latency is not the host's.
        password = self._resolve_password()
        deadline = time.monotonic() + self.settings.connect_timeout
        sock = self._open_socket(endpoint, jump, deadline)
        # paramiko bounds each phase separately; the watchdog bounds them together by tearing
        # the transport down at the deadline, which makes whatever phase is waiting fail.
        watchdog = _Watchdog(deadline - time.monotonic(), lambda: _abort(client, sock))
        with self._state:
            self._abort_attempt = watchdog.fire
        try:
            self._handshake(client, sock, endpoint, password, deadline)
        except Exception as exc:
            fired = not watchdog.disarm()
            phase = _phase(client)
            _abort(client, sock)
            client.close()
            # `from None`: the chain's frames hold the resolved password as a local variable.
            raise self._connect_error(exc, endpoint, fired, phase) from None
        finally:
            with self._state:
                self._abort_attempt = None
        if not watchdog.disarm():
            client.close()
            raise TargetError(self._timed_out_message(endpoint, "while authenticating"))
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(KEEPALIVE_SECONDS)
        return client

    def _new_client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        # Only this file: never ~/.ssh/known_hosts or /etc/ssh (load_system_host_keys), so the
        # trust decision is the inventory's alone.
        known_hosts = self._known_hosts_path()
        if os.path.exists(known_hosts):
            try:
                client.load_host_keys(known_hosts)
            except OSError as exc:
                raise TargetError(f"{self.name}: cannot read known_hosts {known_hosts}: "
                                  f"{exc.strerror}") from None
        client.set_missing_host_key_policy(
            _AcceptNewPolicy(known_hosts) if self.settings.host_key_policy == "accept-new"
            else _StrictPolicy())
        return client

    def _handshake(self, client: paramiko.SSHClient, sock: socket.socket | paramiko.Channel,
                   endpoint: _Endpoint, password: str | None, deadline: float) -> None:
        left = max(0.1, deadline - time.monotonic())
        bare = not endpoint.key_files and password is None
        # paramiko takes a list of key files; its type stubs only admit one.
        key_files: Any = list(endpoint.key_files) or None
        client.connect(
            endpoint.hostname, endpoint.port, username=endpoint.user, password=password,
            key_filename=key_files, sock=sock,
            timeout=left, banner_timeout=left, auth_timeout=left, channel_timeout=left,
            # Like ssh: the agent and ~/.ssh keys only when nothing was configured, so that a
            # configured key that fails is reported instead of silently replaced.
            allow_agent=bare, look_for_keys=bare, transport_factory=_Transport)

    def _resolve_password(self) -> str | None:
        if self.settings.password is None:
            return None
        try:
            return self.settings.password()
        except Exception as exc:  # the secret store's message names the reference, not a value
            raise TargetError(f"{self.name}: cannot get the SSH password: {exc}") from None

    def _open_socket(self, endpoint: _Endpoint, jump: SshTarget | None, deadline: float
                     ) -> socket.socket | paramiko.Channel:
        left = max(0.05, deadline - time.monotonic())
        if jump is not None:
            return self._through_jump(jump, endpoint, left)
        address = (endpoint.hostname, endpoint.port)
        try:
            return socket.create_connection(address, timeout=left)
        except TimeoutError:
            raise TargetError(self._timed_out_message(
                endpoint, "(nothing answered: wrong address, or a firewall/security group "
                          "drops port " + str(endpoint.port) + "?)")) from None
        except ConnectionRefusedError:
            raise TargetError(self._refused_message(endpoint)) from None
        except socket.gaierror as exc:
            raise TargetError(f"{self.name}: cannot resolve {endpoint.hostname}: "
                              f"{exc.strerror}; check the address") from None
        except OSError as exc:
            raise TargetError(self._socket_error_message(endpoint, exc)) from None

    def _connect_jump(self, jump: SshTarget) -> None:
        try:
            jump.connect()
        except TargetError as exc:
            raise TargetError(f"{self.name}: jump host {jump.name} failed: {exc}") from None

    def _through_jump(self, jump: SshTarget, endpoint: _Endpoint, timeout: float
                      ) -> paramiko.Channel:
        where = (f"{self.name}: jump host {jump.name} could not connect to "
                 f"{endpoint.hostname}:{endpoint.port}")
        try:
            return jump._tcp_channel(endpoint.hostname, endpoint.port, timeout)
        except _OpenRejected as exc:
            raise TargetError(f"{where}: {exc.describe()}") from None
        except _OpenTimedOut:
            raise TargetError(self._timed_out_message(
                endpoint, f"through jump host {jump.name}")) from None
        except TargetError as exc:
            raise TargetError(f"{self.name}: jump host {jump.name} failed: {exc}") from None

    def _connect_error(self, exc: Exception, endpoint: _Endpoint, fired: bool, phase: str
                       ) -> TargetError:
        if isinstance(exc, TargetError):
            return exc
        if isinstance(exc, _UnknownHostKey):
            return TargetError(self._unknown_key_message(exc, endpoint))
        if isinstance(exc, paramiko.BadHostKeyException):
            return TargetError(self._mismatch_message(exc, endpoint))
        if isinstance(exc, paramiko.AuthenticationException):
            return TargetError(self._auth_message(exc, endpoint))
        text = _one_line(str(exc))
        if fired or _caused_by_timeout(exc):
            return TargetError(self._timed_out_message(endpoint, phase))
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

    # -- messages ----------------------------------------------------------------------------

    def _timed_out_message(self, endpoint: _Endpoint, where: str) -> str:
        return (f"{self.name}: timed out after {format_duration(self.settings.connect_timeout)} "
                f"connecting to {endpoint.hostname}:{endpoint.port} {where}")

    def _refused_message(self, endpoint: _Endpoint) -> str:
        return (f"{self.name}: connection refused by {endpoint.hostname}:{endpoint.port}; "
                f"is sshd running and listening on port {endpoint.port}?")

    def _socket_error_message(self, endpoint: _Endpoint, exc: OSError) -> str:
        where = f"{endpoint.hostname}:{endpoint.port}"
        if exc.errno in _UNREACHABLE_ERRNOS:
            return (f"{self.name}: no route to host {where} ({exc.strerror}); check the address "
                    "and the routes between this runner and the host")
        return f"{self.name}: cannot connect to {where}: {exc.strerror or exc}"

    def _known_hosts_path(self) -> str:
        return os.path.expanduser(self.settings.known_hosts)

    def _unknown_key_message(self, exc: _UnknownHostKey, endpoint: _Endpoint) -> str:
        path = self._known_hosts_path()
        missing = "" if os.path.exists(path) else " (the file does not exist)"
        return (f"{self.name}: unknown host key for {exc.hostname} ({exc.key.get_name()} "
                f"{exc.key.fingerprint}): not in {path}{missing}; add it with "
                f"`ssh-keyscan -p {endpoint.port} {endpoint.hostname} >> {path}` (after checking "
                "the fingerprint) or set host_key_policy: accept-new")

    def _mismatch_message(self, exc: paramiko.BadHostKeyException, endpoint: _Endpoint) -> str:
        name = _host_key_name(endpoint.hostname, endpoint.port)
        path = self._known_hosts_path()
        return (f"{self.name}: host key mismatch for {name}: presented {exc.key.get_name()} "
                f"{exc.key.fingerprint}, expected {exc.expected_key.get_name()} "
                f"{exc.expected_key.fingerprint} from {path}; if the instance was legitimately "
                f"rebuilt, update known_hosts (ssh-keygen -R '{name}' -f {path}, then add the new "
                "key), otherwise do not trust this host")

    def _auth_message(self, exc: paramiko.AuthenticationException, endpoint: _Endpoint) -> str:
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

    # -- commands ----------------------------------------------------------------------------

    def run(self, command: str, timeout: float) -> CommandResult:
        transport = self._live_transport()
        started = time.monotonic()
        deadline = started + timeout + CLIENT_GRACE_SECONDS
        # Waiting for a free session counts against the command's own timeout.
        if not self._sessions.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return _timed_out(command, "", f"no free SSH session on {self.name} in time")
        try:
            return self._run_session(transport, command, timeout, started, deadline)
        finally:
            self._sessions.release()

    def _run_session(self, transport: paramiko.Transport, command: str, timeout: float,
                     started: float, deadline: float) -> CommandResult:
        chan = self._open_session(transport, deadline)
        if chan is None:
            return _timed_out(command, "", "timed out opening an SSH session")
        try:
            if not self._exec(transport, chan, _remote_command(command, timeout), deadline):
                return _timed_out(command, "", "timed out starting the command")
            out, err, finished = _collect(chan, deadline)
        finally:
            chan.close()
        if not finished:
            return _timed_out(command, _text(out), _text(err))
        # -1: no exit status came. The channel was closed under us (connection lost, or our own
        # deadline timer fired just as the command started) or the command died of a signal
        # (sshd then sends exit-signal, which paramiko does not expose).
        status = chan.exit_status
        if status == -1 and not transport.is_active():
            raise TargetError(self._lost_message())
        if status == -1 and time.monotonic() >= deadline:
            return _timed_out(command, _text(out), _text(err))
        # 124 is what the remote `timeout` wrapper reports; a command may also exit 124 itself,
        # which it cannot have done at the very moment the wrapper fired.
        remote_timeout = status == TIMEOUT_STATUS and (
            time.monotonic() - started >= _remote_seconds(timeout) - 0.05)
        return CommandResult(command, status, _text(out), _text(err), timed_out=remote_timeout)

    def _open_session(self, transport: paramiko.Transport, deadline: float
                      ) -> paramiko.Channel | None:
        """A session channel, or None if the deadline passed; raises TargetError if refused.

        sshd frees a session slot only after it has processed our close of the previous
        channel, so a new session right after one ended can still meet "too many sessions"
        (MaxSessions); the same happens when testinfra shares the connection. Those refusals
        are transient and retried, backing off, until the deadline.
        """
        pause = SESSION_RETRY_SECONDS
        while True:
            try:
                return self._open_channel(transport, "session", None,
                                          deadline - time.monotonic())
            except _OpenRejected as exc:
                if time.monotonic() + pause >= deadline:
                    raise TargetError(f"{self.name}: cannot open an SSH session: "
                                      f"{exc.describe()}") from None
            time.sleep(pause)
            pause = min(pause * 2, SESSION_RETRY_MAX_SECONDS)

    def _exec(self, transport: paramiko.Transport, chan: paramiko.Channel, command: str,
              deadline: float) -> bool:
        """Start the command; False if the deadline passed first."""
        # exec_command waits for the server's reply without a timeout. Setting the event it
        # waits on ends that wait at the deadline without sending anything: a CLOSE sent from
        # another thread could overtake the exec request on the wire, and sshd drops the whole
        # connection for a message about a channel it has freed. (For the same reason stdin is
        # closed by the remote command's </dev/null, not by an EOF from here, which could cross
        # sshd's own CLOSE handled on paramiko's transport thread.)
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), chan.event.set)
        timer.daemon = True
        timer.start()
        try:
            chan.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError):
            if not transport.is_active():
                raise TargetError(self._lost_message()) from None
            if time.monotonic() >= deadline:
                return False
            raise TargetError(f"{self.name}: sshd refused to run a command") from None
        finally:
            timer.cancel()
        return True

    def _live_transport(self) -> paramiko.Transport:
        transport = self.transport
        if not transport.is_active():
            raise TargetError(self._lost_message())
        return transport

    def _lost_message(self) -> str:
        with self._state:
            closed = self._closed
        if closed:
            return self._closed_message()
        endpoint = self._endpoint()
        return (f"{self.name}: the SSH connection to {endpoint.hostname}:{endpoint.port} was "
                "lost (host rebooted, sshd restarted, or the network dropped it)")

    def _open_channel(self, transport: paramiko.Transport, kind: str,
                      dest: tuple[str, int] | None, timeout: float) -> paramiko.Channel | None:
        """A channel, or None when opening it timed out; raises _OpenRejected if refused."""
        if not isinstance(transport, _Transport):  # always ours: _handshake builds it
            raise TargetError(f"{self.name}: unexpected transport {type(transport).__name__}")
        try:
            return transport.open_tracked(kind, dest, max(0.05, timeout))
        except _OpenTimedOut:
            return None
        except _TransportGone:
            raise TargetError(self._lost_message()) from None

    def open_process(self, command: str, timeout: float) -> Stream:
        """The command's stdin/stdout as a session channel that stays open (it holds one of
        the host's session slots until closed)."""
        transport = self._live_transport()
        deadline = time.monotonic() + timeout
        if not self._sessions.acquire(timeout=timeout):
            raise StreamError("timed out", f"no free SSH session on {self.name} in time")
        try:
            chan = self._open_session(transport, deadline)
            if chan is None:
                raise StreamError("timed out", f"timed out opening an SSH session on "
                                               f"{self.name}")
            if not self._exec(transport, chan, command, deadline):
                chan.close()
                raise StreamError("timed out", f"timed out starting a command on {self.name}")
        except BaseException:
            self._sessions.release()
            raise
        return _SessionStream(chan, self._sessions.release)

    # -- streams -----------------------------------------------------------------------------

    def open_stream(self, host: str, port: int, timeout: float) -> Stream:
        where = f"{host}:{port} from {self.name}"
        try:
            return self._tcp_channel(host, port, timeout)
        except _OpenRejected as exc:
            raise StreamError(classify_open_failure(exc.text), f"{where}: {exc.describe()}"
                              ) from None
        except _OpenTimedOut:
            raise StreamError("timed out", f"{where}: timed out after {format_duration(timeout)}"
                              ) from None

    def _tcp_channel(self, host: str, port: int, timeout: float) -> paramiko.Channel:
        """A direct-tcpip channel; raises _OpenRejected, _OpenTimedOut or TargetError."""
        chan = self._open_channel(self._live_transport(), "direct-tcpip", (host, port), timeout)
        if chan is None:
            raise _OpenTimedOut
        return chan

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
        if client is not None:
            # Commands in flight see their channels close and raise TargetError; nothing hangs.
            client.close()
        if self._owned_jump is not None:
            self._owned_jump.close()


# -- the transport ------------------------------------------------------------------------------


class _SessionStream:
    """A session channel as a Stream; closing it gives its session slot back, once."""

    def __init__(self, chan: paramiko.Channel, release: Callable[[], None]) -> None:
        self._chan = chan
        self._release: Callable[[], None] | None = release

    def sendall(self, data: bytes) -> None:
        self._chan.sendall(data)

    def recv(self, size: int) -> bytes:
        data: bytes = self._chan.recv(size)
        return data

    def settimeout(self, timeout: float | None) -> None:
        self._chan.settimeout(timeout)

    def close(self) -> None:
        self._chan.close()
        release, self._release = self._release, None
        if release is not None:
            release()


class _OpenRejected(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text

    def describe(self) -> str:
        text = _one_line(self.text) or "no reason given"
        if self.code == _OPEN_ADMINISTRATIVELY_PROHIBITED:
            return (f"the host's sshd refused the channel ({text}); it may disallow forwarding "
                    "(AllowTcpForwarding, PermitOpen) or have too many sessions (MaxSessions)")
        if self.code == _OPEN_CONNECT_FAILED:
            return text[:1].lower() + text[1:]
        return f"{text} (channel open failure code {self.code})"


class _OpenTimedOut(Exception):
    pass


class _TransportGone(Exception):
    pass


class _Transport(paramiko.Transport):
    """paramiko's Transport, keeping each refused channel's reason for the thread that asked.

    paramiko drops the server's text ("Connection refused", "No route to host") that tells the
    network outcomes apart, and hands a refusal to whichever concurrent opener looks first. Here
    the text is kept per channel id, and the opener finds its own by the id it was given. A
    channel whose open timed out is closed if the server confirms it later, so the host does not
    keep the TCP connection its sshd made for us.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._drc_opener = threading.local()
        self._drc_rejected: dict[int, tuple[int, str]] = {}
        self._drc_abandoned: dict[int, paramiko.Channel] = {}
        # paramiko (3.4+) builds this table per instance precisely so that subclasses can hook
        # messages. Were it shared by the class, refusals would only lose their reason text.
        handlers: dict[int, Callable[[paramiko.Message], None]] | None = (
            vars(self).get("_handler_table"))
        if handlers is None:
            return
        self._drc_parent_success = handlers[MSG_CHANNEL_OPEN_SUCCESS]
        self._drc_parent_failure = handlers[MSG_CHANNEL_OPEN_FAILURE]
        handlers[MSG_CHANNEL_OPEN_SUCCESS] = self._drc_open_success
        handlers[MSG_CHANNEL_OPEN_FAILURE] = self._drc_open_failure

    def _next_channel(self) -> int:
        # Called by open_channel in the opening thread, under self.lock.
        chanid: int = super()._next_channel()  # type: ignore[misc]
        self._drc_opener.chanid = chanid
        return chanid

    def open_tracked(self, kind: str, dest: tuple[str, int] | None, timeout: float
                     ) -> paramiko.Channel:
        self._drc_opener.chanid = None
        try:
            if dest is None:
                return self.open_channel(kind, timeout=timeout)
            return self.open_channel(kind, dest, ("127.0.0.1", 0), timeout=timeout)
        except paramiko.SSHException as exc:
            chanid: int | None = self._drc_opener.chanid
            with self.lock:
                rejected = self._drc_rejected.pop(chanid, None) if chanid is not None else None
            if rejected is not None:
                raise _OpenRejected(*rejected) from None
            if not self.is_active():
                raise _TransportGone(str(exc)) from None
            if chanid is not None and "Timeout opening channel" in str(exc):
                self._abandon(chanid)
                raise _OpenTimedOut from None
            raise

    def _abandon(self, chanid: int) -> None:
        """Remember a channel whose open timed out, so a late confirmation closes it.

        paramiko keeps channels only weakly; the Channel is still alive here because the
        timeout's traceback holds open_channel's frame. Holding it keeps it findable.
        """
        with self.lock:
            chan = self._channels.get(chanid)  # type: ignore[attr-defined]
            if chan is not None:
                self._drc_abandoned[chanid] = chan
        # The confirmation may have arrived between paramiko's timeout and the lock above.
        if chan is not None and chan.active:
            self._drc_close_late(chanid)

    def _drc_close_late(self, chanid: int) -> None:
        with self.lock:
            chan = self._drc_abandoned.pop(chanid, None)
        if chan is not None:
            # Closing sends a message, which must not happen on the transport's own thread.
            threading.Thread(target=chan.close, daemon=True, name="drcheck-close-late").start()

    def _drc_open_success(self, m: paramiko.Message) -> None:
        chanid = m.get_int()
        m.rewind()
        self._drc_parent_success(m)
        self._drc_close_late(chanid)  # does nothing unless the channel was abandoned

    def _drc_open_failure(self, m: paramiko.Message) -> None:
        chanid, code, text = m.get_int(), m.get_int(), m.get_text()
        m.rewind()
        with self.lock:
            if self._drc_abandoned.pop(chanid, None) is None:
                self._drc_rejected[chanid] = (code, text)
        self._drc_parent_failure(m)


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


# -- host keys ----------------------------------------------------------------------------------


class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"unknown host key for {hostname}")
        self.hostname = hostname
        self.key = key


class _StrictPolicy(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        raise _UnknownHostKey(hostname, key)


class _AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """OpenSSH's StrictHostKeyChecking=accept-new: record unknown keys, still refuse changed ones
    (paramiko reports a changed key before it ever consults this policy)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n".encode()
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        # One write to an O_APPEND descriptor: hosts accepted concurrently cannot interleave.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def _host_key_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


# -- settings resolution ------------------------------------------------------------------------


def _resolve(settings: SshSettings) -> _Endpoint:
    options = _ssh_config_options(settings.name, settings.ssh_config, settings.address)
    try:
        port = settings.port or int(options.get("port", 22))
    except ValueError:
        raise TargetError(f"{settings.name}: ssh_config {settings.ssh_config} has Port "
                          f"'{options.get('port')}', not a number") from None
    if settings.identity_file:
        key = os.path.expanduser(settings.identity_file)
        if not os.path.exists(key):
            raise TargetError(f"{settings.name}: identity_file {key} does not exist")
        keys: tuple[str, ...] = (key,)
    else:
        # Like ssh, IdentityFile lines naming absent files are skipped.
        keys = tuple(os.path.expanduser(p) for p in options.get("identityfile", [])
                     if os.path.exists(os.path.expanduser(p)))
    proxy = options.get("proxyjump")
    return _Endpoint(
        hostname=options.get("hostname", settings.address), port=port,
        user=settings.user or options.get("user") or getpass.getuser(), key_files=keys,
        proxy_jump=None if settings.jump is not None or proxy in (None, "none") else proxy)


def _ssh_config_options(name: str, path: str | None, host: str) -> dict[str, Any]:
    if path is None:
        return {}
    full = os.path.expanduser(path)
    try:
        config = paramiko.SSHConfig.from_path(full)
    except OSError as exc:
        raise TargetError(f"{name}: cannot read ssh_config {full}: {exc.strerror}") from None
    except paramiko.SSHException as exc:
        raise TargetError(f"{name}: ssh_config {full} is not valid: {exc}") from None
    return dict(config.lookup(host))


def _proxy_jump_chain(settings: SshSettings, spec: str) -> SshTarget:
    """SshTargets for ``ProxyJump a,b``: b is reached through a, the host through b."""
    previous: SshTarget | None = None
    for hop in spec.split(","):
        user, host, port = _parse_hop(settings.name, hop.strip())
        # The hop's own ssh_config entry supplies HostName/User/Port/IdentityFile; its ProxyJump
        # is not followed (this chain already says how to reach it, and `Host *` would loop).
        options = _ssh_config_options(settings.name, settings.ssh_config, host)
        hop_port = port or int(options.get("port", 22))
        hop_keys = [p for p in options.get("identityfile", [])
                    if os.path.exists(os.path.expanduser(p))]
        previous = SshTarget(SshSettings(
            name=hop.strip(), address=options.get("hostname", host), port=hop_port,
            user=user or options.get("user") or settings.user,
            identity_file=hop_keys[0] if hop_keys else settings.identity_file,
            known_hosts=settings.known_hosts, host_key_policy=settings.host_key_policy,
            connect_timeout=settings.connect_timeout, jump=previous))
    assert previous is not None  # str.split always yields at least one element
    return previous


def _parse_hop(name: str, hop: str) -> tuple[str | None, str, int | None]:
    rest = hop.removeprefix("ssh://")
    user, _, rest = rest.rpartition("@")
    host, port_text = rest, ""
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail.removeprefix(":")
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    if not host or (port_text and not port_text.isdigit()):
        raise TargetError(f"{name}: ProxyJump '{hop}' is not [user@]host[:port]")
    return user or None, host, int(port_text) if port_text else None


# -- command plumbing ---------------------------------------------------------------------------


def _remote_seconds(timeout: float) -> int:
    return max(1, math.ceil(timeout))


def _remote_command(command: str, timeout: float) -> str:
    """The command under the host's own `timeout`, when the host has a working one.

    A client-side timeout only closes the channel; sshd leaves the process running, so the host
    must stop it itself. The probe costs one fork (~1 ms against ~140 ms per exec) and keeps
    hosts whose `timeout` is missing or different (old BusyBox) running the command unwrapped.
    """
    limit = f"timeout -k 1 {_remote_seconds(timeout)}"
    # </dev/null: commands that read stdin get EOF instead of waiting for input never sent.
    return (f"T=; timeout -k 1 1 true >/dev/null 2>&1 && T={shlex.quote(limit)}; "
            f"exec $T sh -c {shlex.quote(command)} </dev/null")


def _collect(chan: paramiko.Channel, deadline: float) -> tuple[bytes, bytes, bool]:
    """stdout, stderr, and whether the command finished (exit status known) by the deadline.

    Both streams are drained as data arrives: they share one flow-control window, so leaving
    stderr unread could stall a command that writes a lot of it.
    """
    out, err = bytearray(), bytearray()
    poller = select.poll()  # not select.select: descriptors above 1024 occur in large runs
    poller.register(chan.fileno(), select.POLLIN)
    while True:
        _drain(chan, out, err)
        if chan.eof_received or chan.closed:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(out), bytes(err), False
        poller.poll(left * 1000)
    _drain(chan, out, err)  # data that arrived just before the EOF
    finished = chan.status_event.wait(max(0.0, deadline - time.monotonic()))
    return bytes(out), bytes(err), finished


def _drain(chan: paramiko.Channel, out: bytearray, err: bytearray) -> None:
    while chan.recv_ready():
        out += chan.recv(65536)
    while chan.recv_stderr_ready():
        err += chan.recv_stderr(65536)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# -- small helpers ------------------------------------------------------------------------------


_UNREACHABLE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH}


class _Watchdog:
    """Calls ``on_fire`` once after ``seconds`` unless disarmed first; knows which happened."""

    def __init__(self, seconds: float, on_fire: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._state = "armed"
        self._on_fire = on_fire
        self._timer = threading.Timer(max(0.0, seconds), self.fire)
        self._timer.daemon = True
        self._timer.start()

    def fire(self) -> None:
        with self._lock:
            if self._state != "armed":
                return
            self._state = "fired"
        self._on_fire()

    def disarm(self) -> bool:
        """True if disarmed in time, False if it had already fired."""
        with self._lock:
            if self._state == "fired":
                return False
            self._state = "disarmed"
        self._timer.cancel()
        return True


def _abort(client: paramiko.SSHClient, sock: socket.socket | paramiko.Channel) -> None:
    # Closing the transport (not client.close(), which would also forget it mid-connect) makes
    # every paramiko wait in the connecting thread fail at once.
    transport = client.get_transport()
    if transport is not None:
        transport.close()
    with contextlib.suppress(OSError):
        sock.close()


def _phase(client: paramiko.SSHClient) -> str:
    """Where a failed or stalled connection attempt stopped, for the message."""
    transport = client.get_transport()
    if transport is None or not transport.remote_version:
        return ("waiting for the SSH banner (the port accepts connections but no SSH server "
                "answers)")
    return "during key exchange or authentication"


def _caused_by_timeout(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _timed_out(command: str, stdout: str, stderr: str) -> CommandResult:
    return CommandResult(command, TIMEOUT_STATUS, stdout, stderr, timed_out=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())
