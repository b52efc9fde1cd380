"""The scale benchmark's site: N recovery instances (network namespaces, each with its own sshd
and chronyd) plus shared DNS, LDAP and NTP servers, built with the lab's own machinery under
the lab lock, on a /16 of its own that the isolation guard covers before anything exists.

Every instance's link carries ``tc netem`` delay (half the round trip each way, on both ends of
the veth), so traffic to the instance *and* from it to the shared servers sees the round trip.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_drcheck.lab import Lab, isolation, lab_lock
from pytest_drcheck.lab.commands import run
from pytest_drcheck.lab.components.dns import Dnsmasq, Zone
from pytest_drcheck.lab.components.ldap import Slapd
from pytest_drcheck.lab.components.ntp import Chronyd
from pytest_drcheck.lab.components.sshd import Sshd
from pytest_drcheck.lab.topology import (
    LAB_PREFIXES,
    PREFIX,
    Host,
    Network,
    Nic,
    Topology,
    veth_name,
)

# Not one of the lab's prefixes: the benchmark's site coexists with the lab (other names, other
# bridge), and the guard below covers this /16 as well as the lab's.
SCALE_PREFIX = "10.76.0.0/16"
STATE_DIR = Path("/var/tmp/drcheck-scale")
NET = Network(f"{PREFIX}7", "10.76.0.0/20", gateway="10.76.0.1")
DNS_ADDR = "10.76.0.53"
LDAP_ADDR = "10.76.0.20"
NTP_ADDR = "10.76.0.30"
DOMAIN = "corp.example"
SUFFIX = "dc=corp,dc=example"
CLOSED_PORT = 3306
# Names every instance resolves, with the system resolver and at the on-prem server.
RECORDS = (("ldap01", LDAP_ADDR), ("ntp01", NTP_ADDR), ("dns01", DNS_ADDR),
           ("files", "10.76.0.40"))


def instance_name(index: int) -> str:
    return f"s{index:04d}"


def instance_address(index: int) -> str:
    # 10.76.1.0 onwards: room for 3,800 instances in the /20.
    return str(ipaddress.IPv4Address("10.76.1.0") + index)


@dataclass(frozen=True)
class ScaleSite:
    hosts: int
    rtt_ms: float
    # Instances run chronyd too (for the time and agent checks); a 1,000-instance site can
    # leave it out to halve its daemons when its suite has no time or agent check.
    clocks: bool = True

    @property
    def instances(self) -> tuple[str, ...]:
        return tuple(instance_name(i) for i in range(1, self.hosts + 1))

    def address(self, name: str) -> str:
        return instance_address(int(name[1:]))

    def topology(self) -> Topology:
        zone = Zone(DOMAIN, RECORDS + tuple((n, self.address(n)) for n in self.instances))
        shared = (
            Host("scdns01", (Nic(NET, DNS_ADDR),),
                 (Dnsmasq(zone, upstream="127.0.0.1"),), nameservers=(DNS_ADDR,)),
            Host("scldap01", (Nic(NET, LDAP_ADDR),),
                 (Slapd(SUFFIX, (f"ldap01.{DOMAIN}",), computers=self.instances),),
                 nameservers=(DNS_ADDR,)),
            Host("scntp01", (Nic(NET, NTP_ADDR),),
                 (Chronyd(serve=(SCALE_PREFIX,)),), nameservers=(DNS_ADDR,)),
        )
        instances = tuple(
            Host(n, (Nic(NET, self.address(n)),),
                 (Sshd(), Chronyd(servers=(NTP_ADDR,))) if self.clocks else (Sshd(),),
                 nameservers=(DNS_ADDR,)) for n in self.instances)
        return Topology(networks=(NET,), hosts=shared + instances,
                        reserved=LAB_PREFIXES)

    def lab(self) -> Lab:
        return Lab(STATE_DIR, self.topology())

    def shape_links(self) -> str:
        """netem on both ends of every instance's veth: half the round trip each way. Returns
        what the links carry; a kernel without sch_netem gets plain veth (said, not hidden)."""
        if self.rtt_ms <= 0:
            return "no added delay (veth round trip)"
        delay = f"{self.rtt_ms / 2:g}ms"
        probe = run(["tc", "qdisc", "replace", "dev", veth_name(self.instances[0], 0), "root",
                     "netem", "delay", delay, "limit", "10000"], check=False)
        if probe.returncode != 0:
            return (f"NO DELAY: tc netem is unavailable on this kernel ({probe.stderr.strip()}); "
                    "links are plain veth (~0.05 ms round trip)")
        run(["tc", "-batch", "-"], input="".join(
            f"qdisc replace dev {veth_name(n, 0)} root netem delay {delay} limit 10000\n"
            for n in self.instances))
        for name in self.instances:
            run(["tc", "-n", f"{PREFIX}-{name}", "qdisc", "replace", "dev", "eth0", "root",
                 "netem", "delay", delay, "limit", "10000"])
        return f"tc netem {delay} each way ({self.rtt_ms:g} ms round trip)"


NEIGH = Path("/proc/sys/net/ipv4/neigh/default")
BACKLOG = Path("/proc/sys/net/core/netdev_max_backlog")


def widen_kernel_tables(hosts: int) -> dict[Path, str]:
    """Room in the kernel for every instance on one bridge; returns what to restore (the
    settings are the machine's, so they are put back when the site goes).

    - The ARP table, which all namespaces share: per instance, one entry each way with the
      runner and with each shared server it talks to (DNS, LDAP, NTP), so up to 8 plus the
      bridge's. Past gc_thresh3 (1,024 by default) the kernel logs "neighbor table overflow"
      and drops the resolution: at 200 instances with 4 x 200 + 256 = 1,056, checks read
      "resolver onprem ... is unreachable (no route)" and connections to LDAP timed out
      (/proc/net/stat/arp_cache: table_fulls and res_failed grew during the run).
    - The per-CPU backlog: a frame the bridge floods (an ARP request) is queued once per port,
      and past netdev_max_backlog (1,000 by default) the rest are dropped (the second column of
      /proc/net/softnet_stat): with 1,000 instances the shared LDAP server never answered its
      readiness probe ("no LDAP answer ... after 60 s").
    """
    saved: dict[Path, str] = {}
    wanted = {NEIGH / "gc_thresh1": 4 * hosts + 128, NEIGH / "gc_thresh2": 8 * hosts + 512,
              NEIGH / "gc_thresh3": 16 * hosts + 1024, BACKLOG: 8 * hosts + 1000}
    for path, value in wanted.items():
        current = path.read_text().strip()
        if int(current) < value:
            saved[path] = current
            path.write_text(f"{value}\n")
    return saved


def restore_kernel_tables(saved: dict[Path, str]) -> None:
    # Highest ARP threshold first on the way down: the kernel wants thresh1 <= 2 <= 3.
    for path in sorted(saved, key=lambda p: p.name, reverse=True):
        path.write_text(f"{saved[path]}\n")


def install_guard() -> None:
    """Unreachable routes and the nft drop table for the lab's prefixes, ours among them
    (LAB_PREFIXES reserves 10.76/16 for this site), before any namespace exists; the lab's
    guard is the same one, so it is never taken away."""
    topology = Topology(networks=(NET,), hosts=(), reserved=LAB_PREFIXES)
    isolation.check_covered(topology)
    isolation.Guard.of(topology).install()


@contextlib.contextmanager
def locked(wait: float = 900.0) -> Iterator[None]:
    with lab_lock(wait, on_wait=lambda msg: print(msg, flush=True)):
        yield


def build(site: ScaleSite) -> tuple[Lab, str]:
    """Bring the site up (under the lab lock, which the caller holds); also say what delay
    the links carry."""
    install_guard()
    lab = site.lab()
    lab.down()
    lab.up()
    return lab, site.shape_links()


def teardown(site: ScaleSite) -> None:
    install_guard()
    site.lab().down()
