"""The scale benchmark's delayed links where ``tc netem`` is missing: one ``delay_relay.py``
process in front of every instance's sshd, reached at 127.76.a.b for instance 10.76.a.b.

Every client (drcheck, testinfra, the paramiko floor) is pointed at the relay by an ssh_config
``Host`` block per instance (``HostName 127.76.a.b``) and a known_hosts that lists each
instance's key under its relay address too, so the inventory, the subjects and the checks stay
exactly those of the undelayed run. Only the runner-to-instance link (the VPN of a real drill)
is delayed; the instances' own traffic to the shared DNS, LDAP and NTP servers is not.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_drcheck.lab import procs

HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")


def relay_address(address: str) -> str:
    """10.76.a.b -> 127.76.a.b: on loopback, one per instance, so port 22 stays port 22 and
    host keys are looked up under a name of their own."""
    packed = ipaddress.IPv4Address(address).packed
    return str(ipaddress.IPv4Address(b"\x7f" + packed[1:]))


@dataclass
class Relay:
    process: subprocess.Popen[bytes]
    rtt_ms: float
    addresses: dict[str, str]  # instance address -> relay address

    def cpu_seconds(self) -> float:
        return (procs.cpu_ticks(self.process.pid) or 0) / TICK

    def banner_round_trip_ms(self, samples: int = 9) -> float:
        """Median time from connect() to the SSH banner through the relay: two round trips
        (TCP's handshake, then the banner) on a real link of this round trip."""
        times = []
        targets = list(self.addresses.values())
        for index in range(samples):
            started = time.perf_counter()
            with socket.create_connection((targets[index % len(targets)], 22), timeout=30) as s:
                s.recv(256)
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(addresses: list[str], rtt_ms: float, directory: Path) -> Relay:
    mapping = {a: relay_address(a) for a in addresses}
    map_file = directory / "relay-map.json"
    map_file.write_text(json.dumps([[r, 22, a, 22] for a, r in mapping.items()]))
    ready = directory / "relay-ready"
    ready.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, str(HERE / "delay_relay.py"), "--delay-ms", f"{rtt_ms / 2:g}",
         "--map", str(map_file), "--ready", str(ready)])
    deadline = time.monotonic() + 120
    while not ready.exists():
        if process.poll() is not None:
            raise RuntimeError(f"the delay relay exited ({process.returncode}) before listening")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the delay relay did not listen within 120 s")
        time.sleep(0.05)
    return Relay(process, rtt_ms, mapping)


def ssh_config_blocks(addresses: dict[str, str]) -> str:
    return "".join(f"Host {a}\n  HostName {r}\n" for a, r in addresses.items())


def known_hosts_lines(known_hosts: Path, addresses: dict[str, str]) -> str:
    """The lab's known_hosts plus each instance's key again under its relay address."""
    lines = known_hosts.read_text().splitlines()
    extra = []
    for line in lines:
        name, _, key = line.partition(" ")
        if name in addresses:
            extra.append(f"{addresses[name]} {key}")
    return "\n".join(lines + extra) + "\n"
