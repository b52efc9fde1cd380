"""Namespaces, bridges and veth pairs, made with ``ip`` (batched: one process per namespace).

Only names this module is given are touched; the caller records them in the state first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from pytest_drcheck.lab.commands import run
from pytest_drcheck.lab.errors import LabError
from pytest_drcheck.lab.paths import RUN_NETNS
from pytest_drcheck.lab.topology import Host, Network, veth_name

_SYS_NET = Path("/sys/class/net")
_IPV6_CONF = Path("/proc/sys/net/ipv6/conf")


def link_exists(name: str) -> bool:
    """A link of that name in the root namespace (sysfs shows the mounting namespace's)."""
    return (_SYS_NET / name).exists()


def netns_exists(name: str) -> bool:
    return (RUN_NETNS / name).exists()


def ip_batch(commands: Sequence[str], netns: str | None = None,
             timeout: float | None = None) -> None:
    """Run ``ip`` commands in one process; on failure name the command that failed."""
    if not commands:
        return
    if timeout is None:
        # Each link or namespace change waits for the kernel (RCU grace periods): deleting a
        # 1,000-instance site's veths took over 15 s on a loaded 2-core machine.
        timeout = 15.0 + 0.1 * len(commands)
    argv = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
    done = run(argv, input="\n".join(commands) + "\n", timeout=timeout, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[0] if lines else f"exit {done.returncode}"
        where = f" in {netns}" if netns else ""
        raise LabError(f"ip{where}: {reason}")


def _disable_ipv6(ifname: str) -> None:
    # Lab links carry IPv4 only: without this, each one would get a link-local address and
    # route, and send router solicitations and MLD reports onto the bridges.
    with contextlib.suppress(FileNotFoundError):
        (_IPV6_CONF / ifname / "disable_ipv6").write_text("1\n")


def add_namespaces(names: Iterable[str]) -> None:
    ip_batch([f"netns add {name}" for name in names])


def add_links(networks: Sequence[Network], hosts: Sequence[Host]) -> None:
    """Bridges and the hosts' veth pairs (the peer goes straight into the host's namespace
    as ``ethN``); root-side links come up, the hosts' NICs stay down until ``nics_up``."""
    create = [f"link add {net.bridge} type bridge" for net in networks]
    attach: list[str] = []
    for net in networks:
        if net.gateway is not None:
            attach.append(f"addr add {net.gateway}/{net.prefixlen} dev {net.bridge}")
        attach.append(f"link set {net.bridge} up")
    for host in hosts:
        for index, nic in enumerate(host.nics):
            veth = veth_name(host.name, index)
            create.append(f"link add {veth} type veth peer name {host.ifname(index)} "
                          f"netns {host.netns}")
            attach += [f"link set {veth} master {nic.network.bridge}", f"link set {veth} up"]
    ip_batch(create)
    for name in [net.bridge for net in networks] + [
            veth_name(h.name, i) for h in hosts for i in range(len(h.nics))]:
        _disable_ipv6(name)
    ip_batch(attach)
    for host in hosts:
        ip_batch([f"addr add {nic.address}/{nic.network.prefixlen} dev {host.ifname(i)}"
                  for i, nic in enumerate(host.nics)], netns=host.netns)


def nics_up(host: Host) -> None:
    ip_batch(["link set lo up", *(f"link set {host.ifname(i)} up"
                                  for i in range(len(host.nics)))], netns=host.netns)


def delete_links(names: Iterable[str]) -> None:
    """Delete the links that still exist (deleting one end of a veth removes both)."""
    ip_batch([f"link del {name}" for name in names if link_exists(name)])


def delete_namespaces(names: Iterable[str]) -> None:
    ip_batch([f"netns del {name}" for name in names if netns_exists(name)])


def routes(netns: str) -> list[str]:
    """The namespace's IPv4 routing table, one route per line."""
    return [line.strip() for line in
            run(["ip", "-n", netns, "-4", "route", "show", "table", "all"]).stdout.splitlines()
            if line.strip()]


def foreign_routes(networks: Sequence[Network]) -> str | None:
    """A route that already covers one of the lab's prefixes and is not the lab's own: the lab
    would shadow it, so ``up`` refuses instead."""
    ours = {net.bridge for net in networks}
    for net in networks:
        for line in run(["ip", "-4", "route", "show", "root", net.cidr]).stdout.splitlines():
            words = line.split()
            dev = words[words.index("dev") + 1] if "dev" in words else ""
            if line.strip() and dev not in ours:
                return f"{line.strip()} (lab network {net.cidr})"
    return None
