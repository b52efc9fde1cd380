"""Lab-addressed traffic never leaves the machine: lab up, a bridge down, the lab half built or
down. Proven by counting packets: a watch table in the root namespace's last postrouting slot
counts every packet to or from a lab prefix that goes out of an interface that is neither a lab
link nor loopback (it must stay at zero), and, as the positive control that the watch sees the
probes at all, the probes that do go out of a lab bridge.

Every probe is a TCP connect to a lab address on a port nothing listens on; the guard is
checked to be in place before anything is sent.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_drcheck.lab import Lab
from pytest_drcheck.lab import state as state_file
from pytest_drcheck.lab.cli import NOT_UP, lab_main
from pytest_drcheck.lab.guard import refusal
from pytest_drcheck.lab.isolation import TABLE, Guard, covered
from pytest_drcheck.lab.site import LAB
from pytest_drcheck.lab.state import LabState
from pytest_drcheck.lab.topology import LAB_PREFIXES, PREFIX

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("drlab")]
REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "lab.yaml"
DOWN = "the sandbox lab is down: run drcheck lab up"

WATCH = "drlab_leakwatch"
APP01, DB01_BACKEND, WEB01 = "10.77.0.11", "10.78.0.13", "10.99.0.80"


def nft(script: str) -> None:
    subprocess.run(["nft", "-f", "-"], input=script, check=True, capture_output=True, text=True,
                   timeout=10)


def nft_list(*what: str) -> str:
    return subprocess.run(["nft", *what], check=True, capture_output=True, text=True,
                          timeout=10).stdout


@dataclass(frozen=True)
class Watch:
    port: int

    def counts(self) -> tuple[int, int]:
        """(packets that left on a non-lab interface, probes that went out of a lab link)."""
        listed = nft_list("list", "chain", "inet", WATCH, "post")
        values = []
        for line in listed.splitlines():
            if "counter packets" in line:
                words = line.split()
                values.append(int(words[words.index("packets") + 1]))
        leaked, seen = values
        return leaked, seen


@pytest.fixture
def watch() -> Iterator[Watch]:
    port = random.randrange(40000, 60000)
    lab_links = f'"{PREFIX}*"'
    prefixes = ", ".join(LAB_PREFIXES)
    nft(f"""table inet {WATCH} {{
  set lab {{ type ipv4_addr; flags interval; elements = {{ {prefixes} }} }}
  chain post {{ type filter hook postrouting priority 1000; policy accept;
    oifname != {{ "lo" }} oifname != {lab_links} ip daddr @lab counter
    oifname {lab_links} meta l4proto tcp th dport {port} counter
  }}
}}
""")
    try:
        yield Watch(port)
    finally:
        nft(f"delete table inet {WATCH}\n")


def guard_in_place(lab: Lab) -> Guard:
    guard = Guard.of(lab.topology)
    assert guard.problem() is None, "the isolation guard must be in place before probing"
    return guard


def probe(address: str, port: int, timeout: float = 1.0, device: str | None = None) -> int:
    """errno of a TCP connect (0 if it connected; ETIMEDOUT if nothing answered)."""
    with socket.socket() as sock:
        sock.settimeout(timeout)
        if device is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        try:
            sock.connect((address, port))
        except TimeoutError:
            return errno.ETIMEDOUT
        except OSError as exc:
            return exc.errno or -1
        return 0


def uplink() -> str | None:
    out = subprocess.run(["ip", "-4", "route", "show", "default"], check=True,
                         capture_output=True, text=True, timeout=10).stdout.split()
    return out[out.index("dev") + 1] if "dev" in out else None


def run_pytest(*args: str, cwd: Path, env: dict[str, str] | None = None
               ) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, check=False)
    return done, time.monotonic() - started


def assert_refused_at_once(tmp_path: Path, env: dict[str, str] | None = None) -> None:
    """A drill of the lab inventory stops before any check: one line, exit 4 (usage), no
    check collected, and sooner than pytest collecting nothing plus one SSH connect timeout
    of the inventory (5 s): no connection was even tried."""
    (tmp_path / "empty").mkdir(exist_ok=True)
    _, baseline = run_pytest("--co", "-q", cwd=tmp_path / "empty")
    done, elapsed = run_pytest(f"--dr-inventory={INVENTORY}", "-q",
                               f"--dr-evidence={tmp_path / 'ev'}", cwd=tmp_path, env=env)
    assert (done.returncode, done.stderr.strip(), done.stdout) == (4, f"ERROR: {DOWN}", "")
    assert not (tmp_path / "ev").exists()
    assert elapsed < baseline + 5.0


def test_a_drill_of_the_lab_inventory_with_no_lab_stops_at_once(tmp_path: Path) -> None:
    # Another state dir holds no lab: the same as the lab down, without taking it down.
    assert_refused_at_once(tmp_path, {"DRCHECK_LAB_DIR": str(tmp_path / "no-lab")})


def test_only_the_marked_inventory_is_refused(tmp_path: Path) -> None:
    assert refusal({"sandbox": "drcheck-lab"}, tmp_path) == DOWN
    assert refusal({"version": 1}, tmp_path) is None
    state_file.save(tmp_path / "state.json", LabState("f", "2026-01-01T00:00:00+00:00"))
    assert refusal({"sandbox": "drcheck-lab"}, tmp_path) == (
        "the sandbox lab is half up (an up did not finish): run drcheck lab up")
    state_file.save(tmp_path / "state.json", LabState(
        "f", "2026-01-01T00:00:00+00:00", complete=True, bridges=["drlab-nosuch"]))
    assert refusal({"sandbox": "drcheck-lab"}, tmp_path) == (
        "the sandbox lab is half up (link drlab-nosuch is gone): run drcheck lab up")
    (tmp_path / "state.json").write_text("{not json")
    reason = refusal({"sandbox": "drcheck-lab"}, tmp_path)
    assert reason is not None and reason.startswith("the sandbox lab is unusable: lab state ")


def test_the_guard_covers_every_lab_network_and_installs_idempotently(lab: Lab) -> None:
    assert all(covered(LAB_PREFIXES, net.cidr) for net in LAB.networks)
    assert covered(LAB_PREFIXES, "10.76.1.0/24")  # the scale benchmark's sites
    assert not covered(LAB_PREFIXES, "10.75.0.0/24")
    lab.isolate_from_uplink()
    lab.isolate_from_uplink()
    assert nft_list("list", "tables").split().count(TABLE) == 1
    routes = subprocess.run(["ip", "-4", "route", "show", "type", "unreachable"], check=True,
                            capture_output=True, text=True, timeout=10).stdout.split("\n")
    assert sorted(r.strip() for r in routes if r.strip()) == sorted(
        f"unreachable {p}" for p in LAB_PREFIXES)
    assert lab.status().isolation_problem is None


def test_lab_up_the_probes_take_the_bridge_and_nothing_leaks(lab: Lab, watch: Watch) -> None:
    guard_in_place(lab)
    assert probe(APP01, watch.port) == errno.ECONNREFUSED
    # The root namespace has no way into the fake internet: today's default route would have
    # carried this out of the machine.
    assert probe(WEB01, watch.port) == errno.EHOSTUNREACH
    leaked, seen = watch.counts()
    assert (leaked, seen >= 1) == (0, True)


def test_a_socket_bound_to_the_uplink_is_dropped(lab: Lab, watch: Watch) -> None:
    device = uplink()
    if device is None:
        pytest.skip("this machine has no default route: nothing to leak through")
    guard = guard_in_place(lab)
    before = guard.dropped()
    # SO_BINDTODEVICE skips the unreachable route: only the nft layer stands in the way.
    assert probe(APP01, watch.port, timeout=0.5, device=device) == errno.ETIMEDOUT
    assert guard.dropped() > before
    assert watch.counts()[0] == 0


def test_a_bridge_down_routes_nothing_out(lab: Lab, watch: Watch) -> None:
    guard_in_place(lab)
    bridge = LAB.networks[0].bridge
    assert refusal({"sandbox": "drcheck-lab"}) is None
    subprocess.run(["ip", "link", "set", bridge, "down"], check=True, timeout=10)
    try:
        assert probe(APP01, watch.port) == errno.EHOSTUNREACH
        assert refusal({"sandbox": "drcheck-lab"}) == (
            f"the sandbox lab is half up (link {bridge} is down): run drcheck lab up")
    finally:
        subprocess.run(["ip", "link", "set", bridge, "up"], check=True, timeout=10)
    assert watch.counts() == (0, 0)
    assert probe(APP01, watch.port) == errno.ECONNREFUSED
    assert watch.counts() == (0, 1)
    assert lab.up().action == "already up"


# -- down and half built (last: they take the lab away and put it back) -----------------------

def test_half_built_lab_leaks_nothing(lab: Lab, watch: Watch) -> None:
    guard_in_place(lab)
    # What an interrupted up or a removed bridge leaves: the backend network has no bridge.
    subprocess.run(["ip", "link", "del", LAB.networks[1].bridge], check=True, timeout=10)
    assert probe(DB01_BACKEND, watch.port) == errno.EHOSTUNREACH
    assert probe(APP01, watch.port) == errno.ECONNREFUSED
    assert watch.counts() == (0, 1)
    report = lab.up()
    assert report.action == "rebuilt" and report.reason == f"link {LAB.networks[1].bridge} is gone"


def test_lab_down_keeps_the_guard_and_leaks_nothing(lab: Lab, watch: Watch, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    lab.down()
    try:
        assert_refused_at_once(tmp_path)
        guard_in_place(lab)
        assert lab_main(["status"]) == NOT_UP
        assert capsys.readouterr().out.splitlines()[-1] == (
            "isolation: lab addresses cannot leave the machine")
        for address in (APP01, DB01_BACKEND, WEB01):
            assert probe(address, watch.port) == errno.EHOSTUNREACH, address
        assert watch.counts() == (0, 0)
    finally:
        lab.up()
