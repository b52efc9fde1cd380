"""The lab's guarantee that lab-addressed traffic never leaves the machine, in any lab state.

Without it, the root namespace routes a lab prefix by the machine's default route whenever no
lab bridge carries it (the lab down, half built, a bridge down, or the "fake internet", which
the root namespace never reaches): a connect to a lab address would go out of the uplink.
Two independent layers, both in the root namespace, both kept after ``down``:

- ``unreachable`` routes for the lab's reserved prefixes. The bridges' connected routes are
  more specific, so they win while a bridge is up; otherwise a connect fails at once with
  "No route to host" instead of taking the default route.
- an nftables table that drops, on every interface that is neither a lab link nor loopback,
  any packet to or from a lab prefix (output and forward hooks). It holds even if someone
  deletes the routes or binds a socket to the uplink.

``install`` is idempotent and atomic (the table is replaced in one nft transaction).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pytest_drcheck.lab.commands import require, run
from pytest_drcheck.lab.errors import LabError
from pytest_drcheck.lab.topology import PREFIX, Topology

TABLE = "drlab_guard"
# Before every other filter (raw priority): nothing another table accepts can get past it.
PRIORITY = -300


@dataclass(frozen=True)
class Guard:
    """What ``install`` puts in place for a topology's reserved prefixes."""

    prefixes: tuple[str, ...]

    @classmethod
    def of(cls, topology: Topology) -> Guard:
        return cls(topology.reserved)

    def ruleset(self) -> str:
        """One nft transaction: create-if-missing, delete, create (a replace that works
        whether or not the table exists, and never leaves a moment without it)."""
        elements = ", ".join(self.prefixes)
        lab_links = f'"{PREFIX}*"'
        return (
            f"table inet {TABLE}\n"
            f"delete table inet {TABLE}\n"
            f"table inet {TABLE} {{\n"
            f"  set lab {{ type ipv4_addr; flags interval; elements = {{ {elements} }} }}\n"
            f"  chain output {{ type filter hook output priority {PRIORITY}; policy accept;\n"
            f'    oifname "lo" accept\n'
            f"    oifname {lab_links} accept\n"
            f"    ip daddr @lab counter drop\n"
            f"    ip saddr @lab counter drop\n"
            f"  }}\n"
            f"  chain forward {{ type filter hook forward priority {PRIORITY}; policy accept;\n"
            f"    oifname {lab_links} accept\n"
            f"    ip daddr @lab counter drop\n"
            f"    ip saddr @lab counter drop\n"
            f"  }}\n"
            f"}}\n"
        )

    def install(self) -> None:
        require("nft")
        run(["nft", "-f", "-"], input=self.ruleset())
        for prefix in self.prefixes:
            run(["ip", "-4", "route", "replace", "unreachable", prefix])

    def problem(self) -> str | None:
        """None when both layers are in place; else what is missing, in a few words."""
        listed = run(["nft", "list", "table", "inet", TABLE], check=False)
        if listed.returncode != 0:
            return f"nftables table inet {TABLE} is missing"
        for prefix in self.prefixes:
            if not unreachable_route(prefix):
                return f"the unreachable route for {prefix} is missing"
        return None

    def dropped(self) -> int:
        """Packets the table has dropped so far (all its counters)."""
        listed = run(["nft", "list", "table", "inet", TABLE]).stdout
        words = listed.split()
        return sum(int(words[i + 1]) for i, word in enumerate(words)
                   if word == "packets" and i + 1 < len(words))


def unreachable_route(prefix: str) -> bool:
    out = run(["ip", "-4", "route", "show", "exact", prefix, "type", "unreachable"]).stdout
    return bool(out.strip())


def covered(prefixes: tuple[str, ...], cidr: str) -> bool:
    network = ipaddress.IPv4Network(cidr)
    return any(network.subnet_of(ipaddress.IPv4Network(p)) for p in prefixes)


def check_covered(topology: Topology) -> None:
    """Every lab network must lie in a reserved prefix, or the guard would not cover it."""
    for net in topology.networks:
        if not covered(topology.reserved, net.cidr):
            raise LabError(f"lab network {net.cidr} is outside the lab's reserved prefixes "
                           f"({', '.join(topology.reserved)}): the isolation guard would not "
                           "cover it")
