"""The scale benchmark's per-host suite written by hand with testinfra (the way a team would
without drcheck): run by ``scale.py`` with SCALE_HOSTS (a JSON file of hosts) and SCALE_SSH
(an ssh_config). Not collected by the project's test suite (not under tests/)."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import pytest
from scale_inventory import BIND_DN, CA, LDAP_NAME, PASSWORD, records
from scale_site import CLOSED_PORT, DNS_ADDR, LDAP_ADDR, SUFFIX

HOSTS = json.loads(Path(os.environ["SCALE_HOSTS"]).read_text())
testinfra_hosts = [f"paramiko://root@{h['address']}?ssh_config={os.environ['SCALE_SSH']}"
                   f"&timeout=30" for h in HOSTS]
NAMES = {h["address"]: h["name"] for h in HOSTS}

# A stdlib-only DNS query over TCP, run on the instance (no dig on the images).
_QUERY = (
    "import socket,struct,sys\n"
    "n=sys.argv[1];s=socket.create_connection((sys.argv[2],53),5)\n"
    "q=struct.pack('>HHHHHH',1,256,1,0,0,0)+b''.join(bytes([len(p)])+p.encode() "
    "for p in n.split('.'))+b'\\0'+struct.pack('>HH',1,1)\n"
    "s.sendall(struct.pack('>H',len(q))+q);r=s.recv(2);r=s.recv(struct.unpack('>H',r)[0])\n"
    "print('.'.join(map(str,r[-4:])))\n")


def _ok(host: Any, command: str) -> str:
    result = host.run(command)
    assert result.rc == 0, result.stderr
    return str(result.stdout)


@pytest.mark.parametrize(("name", "address"), records())
def test_dns_system(host: Any, name: str, address: str) -> None:
    assert address in host.addr(name).ipv4_addresses


@pytest.mark.parametrize(("name", "address"), records())
def test_dns_onprem(host: Any, name: str, address: str) -> None:
    out = _ok(host, f"python3 -c {shlex.quote(_QUERY)} {name} {DNS_ADDR}")
    assert out.strip() == address


def _tcp(port: int) -> str:
    return f"timeout 5 bash -c 'exec 3<>/dev/tcp/{LDAP_ADDR}/{port}'"


def test_reach_open(host: Any) -> None:
    assert host.run(_tcp(389)).rc == 0


def test_reach_closed(host: Any) -> None:
    assert host.run(_tcp(CLOSED_PORT)).rc != 0


def test_agent(host: Any) -> None:
    assert host.process.filter(comm="chronyd")
    assert host.package("chrony").version >= "4.0"
    assert host.run(_tcp(389)).rc == 0
    assert "," in _ok(host, "chronyc -n -c tracking")


def test_nic(host: Any) -> None:
    assert host.interface.names() == ["eth0", "lo"] or "eth0" in host.interface.names()
    assert any(a.startswith("10.76.") for a in host.interface("eth0").addresses)
    assert int(_ok(host, "cat /sys/class/net/eth0/mtu")) == 1500
    assert "default" not in _ok(host, "ip -4 route show")


def test_time(host: Any) -> None:
    tracking = _ok(host, "chronyc -n -c tracking").split(",")
    assert abs(float(tracking[4])) < 1.0
    assert "10.76.0.30" in _ok(host, "chronyc -n -c sources")


def test_ldap(host: Any) -> None:
    env = f"LDAPTLS_CACERT={CA}"
    name = NAMES[host.backend.host.name]
    secret = f'"$(cat {PASSWORD})"'
    _ok(host, f"{env} ldapwhoami -H ldaps://{LDAP_NAME} -x -D '{BIND_DN}' -w {secret}")
    found = _ok(host, f"{env} ldapsearch -LLL -H ldap://{LDAP_NAME} -ZZ -x -D '{BIND_DN}' "
                      f"-w {secret} -b ou=computers,{SUFFIX} '(cn={name})' dn")
    assert f"cn={name}" in found
