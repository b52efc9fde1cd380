"""Running one command in a session channel, bounded on the host and here."""

from __future__ import annotations

import contextlib
import math
import select
import shlex
import time
from collections.abc import Callable
from typing import Protocol

import paramiko

from pytest_drcheck.durations import format_duration
from pytest_drcheck.targets.base import TargetError
from pytest_drcheck.targets.result import TIMEOUT_STATUS, CommandResult
from pytest_drcheck.targets.ssh.errors import OpenRejected
from pytest_drcheck.timer import shared_timer

# The client-side deadline trails the remote `timeout` a little so that, when the host has
# coreutils, the command is stopped there first and its partial output and 124 come back.
CLIENT_GRACE_SECONDS = 0.25
# Pause between attempts to open a session that sshd refused for lack of a free slot.
SESSION_RETRY_SECONDS = 0.02
SESSION_RETRY_MAX_SECONDS = 0.5
# How long a channel torn down without EOF waits for its transport to be marked gone.
LOST_TRANSPORT_GRACE_SECONDS = 1.0


class SessionHost(Protocol):
    """What running a command needs from the connection it runs over."""

    name: str

    def live_transport(self) -> paramiko.Transport: ...

    def acquire_session(self, patience: float) -> bool: ...

    def release_session(self) -> None: ...

    def open_channel(self, transport: paramiko.Transport, kind: str,
                     dest: tuple[str, int] | None, timeout: float) -> paramiko.Channel | None: ...

    def lost_message(self) -> str: ...


def run_command(host: SessionHost, command: str, timeout: float) -> CommandResult:
    transport = host.live_transport()
    # The wait for a free session is not the command's time on the host: its timeout starts
    # once it has a session. The wait ends early only if no session was freed for as long as
    # the command itself may take (see SessionSlots).
    patience = timeout + CLIENT_GRACE_SECONDS
    if not host.acquire_session(patience):
        return timed_out(command, "", f"no free SSH session on {host.name}: none was freed "
                                      f"in {format_duration(patience)}")
    started = time.monotonic()
    deadline = started + timeout + CLIENT_GRACE_SECONDS
    try:
        return _run_session(host, transport, command, timeout, started, deadline)
    finally:
        host.release_session()


def _run_session(host: SessionHost, transport: paramiko.Transport, command: str, timeout: float,
                 started: float, deadline: float) -> CommandResult:
    chan = _open_session(host, transport, deadline)
    if chan is None:
        return timed_out(command, "", "timed out opening an SSH session")
    try:
        # Windows (OpenSSH's cmd.exe): no POSIX `timeout` wrapper; the PowerShell batch bounds
        # its own commands and the client deadline bounds the whole.
        remote = (command if getattr(host, "platform", "linux") == "windows"
                  else remote_command(command, timeout))
        if not start_command(host, transport, chan, remote, deadline):
            return timed_out(command, "", "timed out starting the command")
        out, err, finished = collect(chan, deadline)
    finally:
        chan.close()
    if not finished:
        return timed_out(command, text(out), text(err))
    # -1: no exit status came. The channel was closed under us (connection lost, or our own
    # deadline timer fired just as the command started) or the command died of a signal
    # (sshd then sends exit-signal, which paramiko does not expose).
    status = chan.exit_status
    if status == -1 and not transport.is_active():
        raise TargetError(host.lost_message())
    if status == -1 and time.monotonic() >= deadline:
        return timed_out(command, text(out), text(err))
    # 124 is what the remote `timeout` wrapper reports; a command may also exit 124 itself,
    # which it cannot have done at the very moment the wrapper fired.
    remote_timeout = status == TIMEOUT_STATUS and (
        time.monotonic() - started >= remote_seconds(timeout) - 0.05)
    return CommandResult(command, status, text(out), text(err), timed_out=remote_timeout)


def _open_session(host: SessionHost, transport: paramiko.Transport, deadline: float
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
            return host.open_channel(transport, "session", None, deadline - time.monotonic())
        except OpenRejected as exc:
            if time.monotonic() + pause >= deadline:
                raise TargetError(f"{host.name}: cannot open an SSH session: "
                                  f"{exc.describe()}") from None
        time.sleep(pause)
        pause = min(pause * 2, SESSION_RETRY_MAX_SECONDS)


def start_command(host: SessionHost, transport: paramiko.Transport, chan: paramiko.Channel,
          command: str, deadline: float) -> bool:
    """Start the command; False if the deadline passed first."""
    # exec_command waits for the server's reply without a timeout. Setting the event it
    # waits on ends that wait at the deadline without sending anything: a CLOSE sent from
    # another thread could overtake the exec request on the wire, and sshd drops the whole
    # connection for a message about a channel it has freed. (For the same reason stdin is
    # closed by the remote command's </dev/null, not by an EOF from here, which could cross
    # sshd's own CLOSE handled on paramiko's transport thread.)
    timer = shared_timer().call_later(deadline - time.monotonic(), chan.event.set)
    try:
        chan.exec_command(command)
    except (paramiko.SSHException, OSError, EOFError):
        if not transport.is_active():
            raise TargetError(host.lost_message()) from None
        if time.monotonic() >= deadline:
            return False
        raise TargetError(f"{host.name}: sshd refused to run a command") from None
    finally:
        timer.cancel()
    return True


class SessionStream:
    """A session channel running a long-lived command, as a Stream (its stdin and stdout);
    closing it gives its session slot back, once."""

    def __init__(self, chan: paramiko.Channel, release: Callable[[], None],
                 lost_message: Callable[[], str]) -> None:
        self._chan = chan
        self._release: Callable[[], None] | None = release
        self._lost_message = lost_message

    def sendall(self, data: bytes) -> None:
        try:
            self._chan.sendall(data)
        except (EOFError, OSError) as exc:  # paramiko raises EOFError when its socket died
            self._raise_if_lost()
            if isinstance(exc, EOFError):
                raise ConnectionError("the SSH channel closed while sending") from None
            raise

    def recv(self, size: int) -> bytes:
        data: bytes = self._chan.recv(size)
        if not data:
            self._raise_if_lost()
        return data

    def _raise_if_lost(self) -> None:
        """A channel that ended without the host's EOF is a lost connection, and says so.

        A command that ends sends EOF before the channel closes; a channel closed (or a
        send refused) without it was torn down with its transport.
        """
        if not self._chan.eof_received and transport_gone(self._chan.get_transport(),
                                                          LOST_TRANSPORT_GRACE_SECONDS):
            raise ConnectionError(self._lost_message())

    def settimeout(self, timeout: float | None) -> None:
        self._chan.settimeout(timeout)

    def close(self) -> None:
        # The transport may have died under it: then nothing is left to close on the host.
        with contextlib.suppress(EOFError, OSError):
            self._chan.close()
        release, self._release = self._release, None
        if release is not None:
            release()


def transport_gone(transport: paramiko.Transport | None, grace: float) -> bool:
    """Whether the connection is gone. paramiko closes a dying transport's channels before it
    marks the transport inactive: a channel that just ended may be ahead of that by a moment,
    so a transport still marked active gets ``grace`` seconds for its thread to finish."""
    if transport is not None and transport.is_active():
        transport.join(grace)
    return transport is None or not transport.is_active()


def remote_seconds(timeout: float) -> int:
    return max(1, math.ceil(timeout))


def remote_command(command: str, timeout: float) -> str:
    """The command under the host's own `timeout`, when the host has a working one.

    A client-side timeout only closes the channel; sshd leaves the process running, so the host
    must stop it itself. The probe costs one fork (~1 ms against ~140 ms per exec) and keeps
    hosts whose `timeout` is missing or different (old BusyBox) running the command unwrapped.
    """
    limit = f"timeout -k 1 {remote_seconds(timeout)}"
    # </dev/null: commands that read stdin get EOF instead of waiting for input never sent.
    return (f"T=; timeout -k 1 1 true >/dev/null 2>&1 && T={shlex.quote(limit)}; "
            f"exec $T sh -c {shlex.quote(command)} </dev/null")


def collect(chan: paramiko.Channel, deadline: float) -> tuple[bytes, bytes, bool]:
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


def text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def timed_out(command: str, stdout: str, stderr: str) -> CommandResult:
    return CommandResult(command, TIMEOUT_STATUS, stdout, stderr, timed_out=True)
