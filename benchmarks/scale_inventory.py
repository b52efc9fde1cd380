"""The per-host suite of the scale benchmark, three ways: a drcheck inventory, the matching
hand-written testinfra module (``scale_testinfra.py``, configured by environment) and the
bare-paramiko floor (``scale_floor.py``) doing the same remote work without a framework."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import scale_relay
import yaml
from scale_site import (
    CLOSED_PORT,
    DNS_ADDR,
    DOMAIN,
    LDAP_ADDR,
    RECORDS,
    STATE_DIR,
    SUFFIX,
    ScaleSite,
)

KEY = STATE_DIR / "ssh" / "id_ed25519"
KNOWN_HOSTS = STATE_DIR / "ssh" / "known_hosts"
PASSWORD = STATE_DIR / "secrets" / "directory-bind-password"
CA = STATE_DIR / "pki" / "ca.pem"
BIND_DN = f"uid=drcheck,ou=people,{SUFFIX}"
LDAP_NAME = f"ldap01.{DOMAIN}"


class PlainDumper(yaml.SafeDumper):
    """Writes every host's checks out: PyYAML would write one shared mapping once and alias it
    on every other host, and at 1,000 hosts the aliases expand past the loader's 10,000-value
    guard against alias bombs ("aliases expand to more than 10000 values")."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def records() -> list[tuple[str, str]]:
    return [(f"{name}.{DOMAIN}", address) for name, address in RECORDS]


def inventory(site: ScaleSite, hosts: int, ssh_config: Path | None = None,
              known_hosts: Path = KNOWN_HOSTS) -> dict[str, Any]:
    checks = {
        "dns": [{"site": True}, {"site": True, "resolver": "onprem"}],
        "reach": [{"target": f"{LDAP_ADDR}:389"},
                  {"target": f"{LDAP_ADDR}:{CLOSED_PORT}", "expect": "closed"}],
        "agent": [{"agent": "chrony"}],
        "nic": [{"count": 1, "mode": "change", "subnets": ["10.76.0.0/20"]}],
        "time": [{}],
        "ldap": [{"directory": "corp"}],
    }
    return {
        "version": 1,
        "drill": {"name": f"scale-{hosts}", "rto": "4h", "rpo": "15m"},
        "defaults": {"timeout": "30s", "connection": {
            "type": "ssh", "user": "root", "identity_file": str(KEY),
            "known_hosts": str(known_hosts), "connect_timeout": "20s",
            "command_timeout": "20s",
            **({"ssh_config": str(ssh_config)} if ssh_config is not None else {})}},
        "site": {
            "dns": {"resolvers": {"onprem": DNS_ADDR},
                    "records": [{"name": n, "values": [a]} for n, a in records()]},
            "directory": {"corp": {
                "servers": [LDAP_NAME], "user": BIND_DN, "password": f"file:{PASSWORD}",
                "ca_bundle": str(CA),
                "search": {"base": f"ou=computers,{SUFFIX}", "filter": "(cn={host})"}}},
            "time": {"max_offset": "1s", "sources": [f"ntp01.{DOMAIN}"]},
            "agents": {"chrony": {
                "service": "chrony", "process": "chronyd",
                "version": {"constraint": ">=4.0", "package": "chrony"},
                "manager": f"{LDAP_ADDR}:389",
                "health": {"command": "chronyc -n -c tracking", "expect": ","}}},
        },
        "hosts": {name: {"address": site.address(name), "checks": checks}
                  for name in site.instances[:hosts]},
    }


def write(site: ScaleSite, hosts: int, directory: Path,
          relay: dict[str, str] | None = None) -> dict[str, Path]:
    """The three inputs for ``hosts`` instances: inventory, testinfra hosts, floor hosts.
    With ``relay`` (instance address -> delaying relay address), every client reaches the
    instances through the relay: an ssh_config Host block per instance, and a known_hosts with
    each key under the relay's address too (scale_relay.py)."""
    directory.mkdir(parents=True, exist_ok=True)
    names = site.instances[:hosts]
    known_hosts = KNOWN_HOSTS
    blocks = ""
    if relay is not None:
        known_hosts = directory / "known_hosts-relay"
        known_hosts.write_text(scale_relay.known_hosts_lines(KNOWN_HOSTS, relay))
        blocks = scale_relay.ssh_config_blocks(relay)
    ssh_config = directory / "ssh_config"
    ssh_config.write_text(f"{blocks}Host *\n  User root\n  IdentityFile {KEY}\n"
                          f"  UserKnownHostsFile {known_hosts}\n  StrictHostKeyChecking yes\n")
    inv = directory / f"inventory-{hosts}.yaml"
    inv.write_text(yaml.dump(inventory(
        site, hosts, ssh_config if relay is not None else None, known_hosts),
        Dumper=PlainDumper, sort_keys=False))
    hosts_file = directory / f"hosts-{hosts}.json"
    hosts_file.write_text(json.dumps([
        {"name": n, "address": site.address(n),
         "connect": (relay or {}).get(site.address(n), site.address(n))} for n in names]))
    return {"inventory": inv, "ssh_config": ssh_config, "hosts": hosts_file}
