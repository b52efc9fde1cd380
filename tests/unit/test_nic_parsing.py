"""nic parses what iproute2 really prints: the runner's own `ip -j` output, plus fixed samples."""

import json
import subprocess

from pytest_drcheck.checks.nic import (
    parse_default_gateways,
    parse_interfaces,
    parse_nameservers,
)

SAMPLE = json.dumps([
    {"ifname": "lo", "link_type": "loopback", "mtu": 65536,
     "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}]},
    {"ifname": "eth1@if9", "link_type": "ether", "address": "aa:bb:cc:00:00:02", "mtu": 9001,
     "addr_info": [{"family": "inet", "local": "10.78.0.13", "prefixlen": 24,
                    "scope": "global"},
                   {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]},
    {"ifname": "eth0@if7", "link_type": "ether", "address": "aa:bb:cc:00:00:01", "mtu": 1500,
     "addr_info": [{"family": "inet", "local": "10.77.0.13", "prefixlen": 24,
                    "scope": "global"}]},
])


def test_interfaces_sorted_without_loopback_or_link_local() -> None:
    interfaces = parse_interfaces(SAMPLE)
    assert [(i.name, i.mtu, i.addresses) for i in interfaces] == [
        ("eth0", 1500, ("10.77.0.13/24",)), ("eth1", 9001, ("10.78.0.13/24",))]
    assert interfaces[0].mac == "aa:bb:cc:00:00:01"


def test_runner_output_parses() -> None:
    out = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True,
                         check=True).stdout
    assert all(i.name != "lo" for i in parse_interfaces(out))


def test_gateways_and_nameservers() -> None:
    routes = json.dumps([{"dst": "default", "gateway": "10.77.0.1", "dev": "eth0"}])
    assert parse_default_gateways(routes) == ["10.77.0.1"]
    assert parse_default_gateways("[]") == []
    assert parse_nameservers("# x\nsearch corp.example\nnameserver 10.77.0.53\n"
                             "nameserver 10.77.0.54\n") == ["10.77.0.53", "10.77.0.54"]
