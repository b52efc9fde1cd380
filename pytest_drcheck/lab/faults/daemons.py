"""Faults in the daemons: stopped, restarted with other data (a DNS record, a host key)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pytest_drcheck.lab.components.dns import Dnsmasq
from pytest_drcheck.lab.components.sshd import Sshd
from pytest_drcheck.lab.faults.base import check_ip, in_force

if TYPE_CHECKING:
    from pytest_drcheck.lab.api import Lab


@contextlib.contextmanager
def dns_record(lab: Lab, name: str, ip: str) -> Iterator[None]:
    check_ip(ip)
    host, dnsmasq = lab.find(Dnsmasq)
    ctx = lab.context(host)
    with in_force(lab, "dns_record", host, f"{name} A {ip}"):
        previous = dnsmasq.set_record(ctx, name, ip)
        try:
            # dnsmasq reads host-record= only at start: restart it by PID.
            lab.restart(host, dnsmasq.name)
            yield
        finally:
            dnsmasq.set_record(ctx, name, previous)
            lab.restart(host, dnsmasq.name)


@contextlib.contextmanager
def stopped(lab: Lab, host: str, daemon: str) -> Iterator[None]:
    with in_force(lab, "stopped", host, daemon):
        lab.stop(host, daemon)
        try:
            yield
        finally:
            lab.start(host, daemon)


@contextlib.contextmanager
def rotated_host_key(lab: Lab, host: str) -> Iterator[None]:
    sshd = lab.component(host, Sshd)
    ctx = lab.context(host)
    with in_force(lab, "rotated_host_key", host, "sshd serves a new host key"):
        old = sshd.rotate_host_key(ctx)
        try:
            lab.restart(host, sshd.name)
            yield
        finally:
            sshd.restore_host_key(ctx, old)
            lab.restart(host, sshd.name)
