"""Ways to break the lab on purpose, each undone when its ``with`` block ends.

Each breaker is also written to the state file while in force: ``status`` shows it, and if
the process holding it dies without undoing it, ``up`` sees a stale breaker and rebuilds.
``down`` removes everything a breaker changed anyway (namespaces, /etc/netns, state dir).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pytest_drcheck.lab import procs
from pytest_drcheck.lab.commands import require
from pytest_drcheck.lab.components.dns import Dnsmasq
from pytest_drcheck.lab.components.sshd import Sshd
from pytest_drcheck.lab.errors import LabError
from pytest_drcheck.lab.paths import ETC_NETNS
from pytest_drcheck.lab.state import BreakerState

if TYPE_CHECKING:
    from pytest_drcheck.lab.api import Lab


@contextlib.contextmanager
def _in_force(lab: Lab, kind: str, host: str, detail: str) -> Iterator[None]:
    owner = procs.ref(os.getpid())
    if owner is None:
        raise LabError("cannot read /proc/self: is /proc mounted?")
    record = BreakerState(kind, host, detail, owner)
    state = lab.state()
    state.breakers.append(record)
    lab.save(state)
    try:
        yield
    finally:
        state = lab.state()
        if record in state.breakers:
            state.breakers.remove(record)
        lab.save(state)


def _nft(lab: Lab, host: str, script: str) -> None:
    require("nft")
    done = lab.exec(host, ["nft", "-f", "-"], timeout=10.0, input=script)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        raise LabError(f"nft on {host}: {lines[0]}")


@contextlib.contextmanager
def _nft_table(lab: Lab, host: str, body: str) -> Iterator[None]:
    """A table of our own per breaker: undoing it is deleting the table, which cannot
    disturb another breaker's rules."""
    table = f"drlab_{uuid.uuid4().hex[:10]}"
    _nft(lab, host, f"table inet {table} {{\n{body}\n}}\n")
    try:
        yield
    finally:
        _nft(lab, host, f"delete table inet {table}\n")


def _check_ip(ip: str) -> None:
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        raise LabError(f"{ip!r} is not an IPv4 address") from None


@contextlib.contextmanager
def dns_record(lab: Lab, name: str, ip: str) -> Iterator[None]:
    _check_ip(ip)
    host, dnsmasq = lab.find(Dnsmasq)
    ctx = lab.context(host)
    with _in_force(lab, "dns_record", host, f"{name} A {ip}"):
        previous = dnsmasq.set_record(ctx, name, ip)
        try:
            # dnsmasq reads host-record= only at start: restart it by PID.
            lab.restart(host, dnsmasq.name)
            yield
        finally:
            dnsmasq.set_record(ctx, name, previous)
            lab.restart(host, dnsmasq.name)


@contextlib.contextmanager
def hosts_entry(lab: Lab, host: str, name: str, ip: str) -> Iterator[None]:
    _check_ip(ip)
    if host not in lab.hosts:
        raise LabError(f"no host {host!r} in the lab (hosts: {', '.join(lab.hosts)})")
    path = ETC_NETNS / lab.topology.host(host).netns / "hosts"
    if not path.exists():
        raise LabError(f"{path} is missing: run drcheck lab up")
    original = path.read_bytes()
    with _in_force(lab, "hosts_entry", host, f"{ip} {name}"):
        # In place, never by rename: the file is bind-mounted into the host by inode.
        with open(path, "ab") as handle:
            handle.write(f"{ip} {name}\n".encode())
        try:
            yield
        finally:
            with open(path, "r+b") as handle:
                handle.write(original)
                handle.truncate()


@contextlib.contextmanager
def firewall(lab: Lab, host: str, port: int, action: str, direction: str,
             source: str | None = None) -> Iterator[None]:
    if action not in ("reject", "drop"):
        raise LabError(f"firewall action must be 'reject' or 'drop', not {action!r}")
    if direction not in ("input", "output"):
        raise LabError(f"firewall direction must be 'input' or 'output', not {direction!r}")
    if not 0 < port < 65536:
        raise LabError(f"port {port} is out of range")
    if source is not None:
        _check_ip(source)
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
    with _in_force(lab, "firewall", host, f"{direction} port {port}{origin} {action}"), \
            _nft_table(lab, host, body):
        yield


@contextlib.contextmanager
def isolate(lab: Lab, host: str) -> Iterator[None]:
    body = ("chain in { type filter hook input priority -20; policy drop; iif lo accept; }\n"
            "chain out { type filter hook output priority -20; policy drop; oif lo accept; }")
    with _in_force(lab, "isolate", host, "all interfaces but lo drop"), \
            _nft_table(lab, host, body):
        yield


@contextlib.contextmanager
def stopped(lab: Lab, host: str, daemon: str) -> Iterator[None]:
    with _in_force(lab, "stopped", host, daemon):
        lab.stop(host, daemon)
        try:
            yield
        finally:
            lab.start(host, daemon)


@contextlib.contextmanager
def rotated_host_key(lab: Lab, host: str) -> Iterator[None]:
    sshd = lab.component(host, Sshd)
    ctx = lab.context(host)
    with _in_force(lab, "rotated_host_key", host, "sshd serves a new host key"):
        old = sshd.rotate_host_key(ctx)
        try:
            lab.restart(host, sshd.name)
            yield
        finally:
            sshd.restore_host_key(ctx, old)
            lab.restart(host, sshd.name)
