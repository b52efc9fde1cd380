"""Faults in the network posture (egress and NIC); each undoes itself.

They change only lab namespaces and lab bridges. ``direct_path`` opens a direct route from an
instance to the fake internet the way a wrongly widened firewall would: the web server gets a
second NIC on the corporate LAN and the instance an on-link route, so no namespace forwards or
NATs anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pytest_drcheck.lab.commands import run
from pytest_drcheck.lab.components.proxy import Squid
from pytest_drcheck.lab.site import LAN
from pytest_drcheck.lab.topology import PREFIX

if TYPE_CHECKING:
    from pytest_drcheck.lab.api import Lab


def _ip(*args: str) -> None:
    run(["ip", *args])


@contextlib.contextmanager
def proxy_allows(lab: Lab, domain: str) -> Iterator[None]:
    """The proxy's allow-list also admits ``domain`` (e.g. one the policy denies)."""
    host, squid = lab.find(Squid)
    ctx = lab.context(host)
    squid.write_allow_list(ctx, (*squid.allow, domain))
    lab.restart(host, squid.name)
    try:
        yield
    finally:
        squid.write_allow_list(ctx, squid.allow)
        lab.restart(host, squid.name)


@contextlib.contextmanager
def direct_path(lab: Lab, instance: str, web_host: str = "web01",
                lan_address: str = "10.77.0.98") -> Iterator[None]:
    web_ns, instance_ns = f"{PREFIX}-{web_host}", f"{PREFIX}-{instance}"
    outer, inner = f"{PREFIX}9-hole", "eth9"
    _ip("link", "add", outer, "type", "veth", "peer", "name", inner, "netns", web_ns)
    try:
        _ip("link", "set", outer, "master", LAN.bridge, "up")
        _ip("-n", web_ns, "addr", "add", f"{lan_address}/24", "dev", inner)
        _ip("-n", web_ns, "link", "set", inner, "up")
        _ip("-n", instance_ns, "route", "add", "10.99.0.0/24", "dev", "eth0")
        try:
            yield
        finally:
            _ip("-n", instance_ns, "route", "del", "10.99.0.0/24", "dev", "eth0")
    finally:
        _ip("link", "del", outer)


@contextlib.contextmanager
def extra_address(lab: Lab, host: str, cidr: str, ifname: str = "eth0") -> Iterator[None]:
    """An address the inventory does not expect, e.g. outside the target subnet."""
    namespace = f"{PREFIX}-{host}"
    lab.address(host)  # a clear error for an unknown host
    _ip("-n", namespace, "addr", "add", cidr, "dev", ifname)
    try:
        yield
    finally:
        _ip("-n", namespace, "addr", "del", cidr, "dev", ifname)


@contextlib.contextmanager
def nic_missing(lab: Lab, host: str, ifname: str, cidr: str) -> Iterator[None]:
    """The NIC is gone from the instance (parked in a lab-owned namespace meanwhile), as when
    a post-launch action that adds the secondary NIC did not run."""
    namespace, parking = f"{PREFIX}-{host}", f"{PREFIX}-park"
    lab.address(host)
    _ip("netns", "add", parking)
    try:
        _ip("-n", namespace, "link", "set", ifname, "netns", parking)
        try:
            yield
        finally:
            _ip("-n", parking, "link", "set", ifname, "netns", namespace)
            _ip("-n", namespace, "addr", "replace", cidr, "dev", ifname)
            _ip("-n", namespace, "link", "set", ifname, "up")
    finally:
        _ip("netns", "del", parking)
