"""Opening one authenticated SSH connection, every phase under one deadline."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import paramiko

from pytest_drcheck.targets.base import TargetError
from pytest_drcheck.targets.ssh.channels import transport_factory
from pytest_drcheck.targets.ssh.errors import ConnectMessages
from pytest_drcheck.targets.ssh.hostkeys import (
    AcceptNewPolicy,
    InvalidKnownHostsLine,
    StrictPolicy,
    trust_known_keys,
)
from pytest_drcheck.targets.ssh.settings import Endpoint, SshSettings
from pytest_drcheck.timer import shared_timer

# A connection whose peer stops acknowledging for this long (or twice the connect timeout,
# if longer) is dead: the runner was cut off or the instance froze. The kernel then fails the
# socket (TCP_USER_TIMEOUT), so every check of the host ends with "connection lost" at once
# instead of each waiting out its own timeout. ACKs come from the peer's kernel, not from a
# busy sshd, so load on either side does not trip it.
DEAD_AFTER_SECONDS = 10.0
# Keepalives make the kernel's clock run on an otherwise quiet connection (a check waiting
# for an answer sends nothing), and keep NAT and stateful firewalls from dropping it.
KEEPALIVE_FRACTION = 1 / 3


def dead_after(connect_timeout: float) -> float:
    return max(DEAD_AFTER_SECONDS, 2 * connect_timeout)


def new_client(settings: SshSettings, endpoint: Endpoint) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    # Only this file: never ~/.ssh/known_hosts or /etc/ssh (load_system_host_keys), so the
    # trust decision is the inventory's alone. Read once per run and indexed by host.
    known_hosts = os.path.expanduser(settings.known_hosts)
    try:
        trust_known_keys(client, known_hosts, endpoint.hostname, endpoint.port)
    except OSError as exc:
        raise TargetError(f"{settings.name}: cannot read known_hosts {known_hosts}: "
                          f"{exc.strerror}") from None
    except InvalidKnownHostsLine as exc:
        raise TargetError(f"{settings.name}: {exc}") from None
    client.set_missing_host_key_policy(
        AcceptNewPolicy(known_hosts) if settings.host_key_policy == "accept-new"
        else StrictPolicy())
    return client


def resolve_password(settings: SshSettings) -> str | None:
    if settings.password is None:
        return None
    try:
        return settings.password()
    except Exception as exc:  # the secret store's message names the reference, not a value
        raise TargetError(f"{settings.name}: cannot get the SSH password: {exc}") from None


def open_socket(messages: ConnectMessages, endpoint: Endpoint, deadline: float,
                dead_seconds: float = DEAD_AFTER_SECONDS) -> socket.socket:
    left = max(0.05, deadline - time.monotonic())
    address = (endpoint.hostname, endpoint.port)
    try:
        sock = socket.create_connection(address, timeout=left)
    except TimeoutError:
        raise TargetError(messages.timed_out(
            endpoint, "(nothing answered: wrong address, or a firewall/security group "
                      "drops port " + str(endpoint.port) + "?)")) from None
    except ConnectionRefusedError:
        raise TargetError(messages.refused(endpoint)) from None
    except socket.gaierror as exc:
        raise TargetError(f"{messages.name}: cannot resolve {endpoint.hostname}: "
                          f"{exc.strerror}; check the address") from None
    except OSError as exc:
        raise TargetError(messages.socket_error(endpoint, exc)) from None
    # Every exec and channel open is a few small messages each way; with Nagle's algorithm
    # meeting the peer's delayed ACK each one stalls ~40 ms (bare paramiko on loopback: exec
    # 48 ms -> 3.5 ms, direct-tcpip open 44 ms -> 0.33 ms). OpenSSH's ssh sets it too.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(dead_seconds * 1000))
    return sock


def handshake(client: paramiko.SSHClient, sock: socket.socket | paramiko.Channel,
              endpoint: Endpoint, password: str | None, deadline: float, host: str) -> None:
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
        allow_agent=bare, look_for_keys=bare, transport_factory=transport_factory(host))


def keep_alive(client: paramiko.SSHClient, dead_seconds: float = DEAD_AFTER_SECONDS) -> None:
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(max(1, int(dead_seconds * KEEPALIVE_FRACTION)))


class Watchdog:
    """Calls ``on_fire`` once after ``seconds`` unless disarmed first; knows which happened."""

    def __init__(self, seconds: float, on_fire: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._state = "armed"
        self._on_fire = on_fire
        # The process's one timer thread, not a thread per connection attempt; tearing a
        # transport down can wait for its thread, so that runs on a thread of its own, started
        # only when the deadline is missed (the timer must never wait).
        self._timer = shared_timer().call_later(seconds, self._fire_aside)

    def _fire_aside(self) -> None:
        threading.Thread(target=self.fire, name="drcheck-connect-abort", daemon=True).start()

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


def abort(client: paramiko.SSHClient, sock: socket.socket | paramiko.Channel) -> None:
    # Closing the transport (not client.close(), which would also forget it mid-connect) makes
    # every paramiko wait in the connecting thread fail at once.
    transport = client.get_transport()
    if transport is not None:
        transport.close()
    with contextlib.suppress(OSError):
        sock.close()


def phase(client: paramiko.SSHClient) -> str:
    """Where a failed or stalled connection attempt stopped, for the message."""
    transport = client.get_transport()
    if transport is None or not transport.remote_version:
        return ("waiting for the SSH banner (the port accepts connections but no SSH server "
                "answers)")
    return "during key exchange or authentication"
