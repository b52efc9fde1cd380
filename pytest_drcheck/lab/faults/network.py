"""Faults in the network: firewalls inside a host, a host cut off, /etc/hosts overrides, and a
port that accepts connections and closes them at once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pytest_drcheck.lab.errors import LabError
from pytest_drcheck.lab.faults.base import check_ip, in_force, nft_table, rewrite_in_place
from pytest_drcheck.lab.paths import ETC_NETNS

if TYPE_CHECKING:
    from pytest_drcheck.lab.api import Lab


@contextlib.contextmanager
def hosts_entry(lab: Lab, host: str, name: str, ip: str) -> Iterator[None]:
    check_ip(ip)
    if host not in lab.hosts:
        raise LabError(f"no host {host!r} in the lab (hosts: {', '.join(lab.hosts)})")
    path = ETC_NETNS / lab.topology.host(host).netns / "hosts"
    if not path.exists():
        raise LabError(f"{path} is missing: run drcheck lab up")
    original = path.read_bytes()
    with in_force(lab, "hosts_entry", host, f"{ip} {name}"):
        # In place, never by rename: the file is bind-mounted into the host by inode.
        with open(path, "ab") as handle:
            handle.write(f"{ip} {name}\n".encode())
        try:
            yield
        finally:
            rewrite_in_place(path, original)


@contextlib.contextmanager
def firewall(lab: Lab, host: str, port: int, action: str = "reject", direction: str = "input",
             source: str | None = None) -> Iterator[None]:
    """nftables in the host: TCP/UDP ``port`` rejected (TCP reset) or dropped, for traffic to
    the host (input) or from it (output); only from ``source`` if given."""
    if action not in ("reject", "drop"):
        raise LabError(f"firewall action must be 'reject' or 'drop', not {action!r}")
    if direction not in ("input", "output"):
        raise LabError(f"firewall direction must be 'input' or 'output', not {direction!r}")
    if not 0 < port < 65536:
        raise LabError(f"port {port} is out of range")
    if source is not None:
        check_ip(source)
    # Only packets from that address (e.g. the backup server's inbound connection).
    match = f"ip saddr {source} " if source is not None else ""
    if action == "reject":
        # A TCP reset is what a closed port or a rejecting firewall answers: "refused" at once.
        rules = (f"{match}meta l4proto tcp th dport {port} reject with tcp reset\n"
                 f"{match}meta l4proto udp th dport {port} reject")
    else:
        rules = f"{match}meta l4proto {{ tcp, udp }} th dport {port} drop"
    body = (f"chain breaker {{ type filter hook {direction} priority -10; policy accept;\n"
            f"{rules}\n}}")
    origin = f" from {source}" if source is not None else ""
    with in_force(lab, "firewall", host, f"{direction} port {port}{origin} {action}"), \
            nft_table(lab, host, body):
        yield


@contextlib.contextmanager
def isolate(lab: Lab, host: str) -> Iterator[None]:
    body = ("chain in { type filter hook input priority -20; policy drop; iif lo accept; }\n"
            "chain out { type filter hook output priority -20; policy drop; oif lo accept; }")
    with in_force(lab, "isolate", host, "all interfaces but lo drop"), \
            nft_table(lab, host, body):
        yield


# Accepts every connection and closes it at once, without a byte: a port that is "open" to a
# TCP probe but answers no protocol. Standard library only (the host runs the system python3).
_ACCEPT_AND_CLOSE = """
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])), reuse_port=False)
print("accepting and closing on", sys.argv[1], sys.argv[2], flush=True)
while True:
    connection, _ = server.accept()
    connection.close()
"""


@contextlib.contextmanager
def accepting_and_closing(lab: Lab, host: str, port: int, address: str | None = None
                          ) -> Iterator[None]:
    """Something on ``host`` listens on ``port`` (its lab address unless ``address``, e.g.
    127.0.0.1) and closes every connection at once. The port must be free: stop the daemon
    that owns it first (``stopped``)."""
    from pytest_drcheck.lab import procs, realhost
    from pytest_drcheck.lab.commands import require

    if not 0 < port < 65536:
        raise LabError(f"port {port} is out of range")
    listen = address if address is not None else lab.address(host)
    check_ip(listen)
    init = lab.state().hosts[host].init
    if init is None:
        raise LabError(f"host {host} has no PID 1: run drcheck lab up")
    log = lab.context(host).dir / f"accept-close-{port}.log"
    with in_force(lab, "accepting_and_closing", host, f"{listen}:{port} accepts and closes"):
        daemon, launcher_ref, launcher = realhost.start_daemon(
            init, host, [require("python3"), "-c", _ACCEPT_AND_CLOSE, listen, str(port)],
            "python3", log)
        try:
            _wait_listening(lab, host, port)
            yield
        finally:
            procs.stop([daemon, launcher_ref], grace=1.0)
            launcher.wait(timeout=5.0)


def _wait_listening(lab: Lab, host: str, port: int, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = lab.exec(host, ["ss", "-Htln", f"sport = :{port}"], timeout=5.0)
        if done.stdout.strip():
            return
        time.sleep(0.05)
    raise LabError(f"nothing listens on port {port} of {host} after {timeout:g} s")


@contextlib.contextmanager
def cut_off(lab: Lab, host: str, peer: str) -> Iterator[None]:
    """Every packet between ``host`` and ``peer`` is dropped (both ways), as when the link
    between the runner and an instance dies mid-run; the host's other paths stay."""
    check_ip(peer)
    body = ("chain in { type filter hook input priority -20; policy accept; "
            f"ip saddr {peer} drop; }}\n"
            "chain out { type filter hook output priority -20; policy accept; "
            f"ip daddr {peer} drop; }}")
    with in_force(lab, "cut_off", host, f"all traffic with {peer} dropped"), \
            nft_table(lab, host, body):
        yield
