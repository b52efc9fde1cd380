"""Measured RPO against the lab simulator's known lag, the sizing figure against the known write
rate, and what the two checks add to a drill (issue 15's closing figures).

- frozen: as a DRS drill. The simulator is stopped (the instance's data is frozen at that
  moment), that moment is passed as --dr-launched-at, and the rpo check measures. The error is
  measured - lag: expected within [0, beacon step + copy tick] (0.25 s + 0.05 s) plus the stop.
- live: ``recovery_point: now`` on the running standby (the shipped lab drill's way).
- sizing: the replication check on src01's loop device against its known 1 MiB/s.
- cost: each check's own duration in the drill (results.jsonl), medians.

Needs root and a free lab lock (brings the lab up and down itself).
Usage: python benchmarks/rpo_accuracy.py [--drills 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lablock import fresh_lab  # noqa: E402

from pytest_drcheck.beacon import parse_beacon  # noqa: E402
from pytest_drcheck.lab import Lab, faults  # noqa: E402
from pytest_drcheck.lab.components.replication import (  # noqa: E402
    ReplicationSimulator,
    SourceLoad,
    device_file,
)

REPLICA = "/var/tmp/drcheck-lab/hosts/app01/replica-beacon"
HEAD = """\
version: 1
drill: {name: rpo-accuracy, rpo: 15m}
defaults:
  timeout: 20s
  connection: {type: ssh, user: root, identity_file: /var/tmp/drcheck-lab/ssh/id_ed25519,
               known_hosts: /var/tmp/drcheck-lab/ssh/known_hosts, connect_timeout: 5s}
hosts:
  src01: {address: 10.77.0.71}
  app01:
    address: 10.77.0.11
    source: src01
    checks:
"""


def drill(workdir: Path, checks: str, *args: str) -> list[dict[str, object]]:
    inventory = workdir / "site.yaml"
    inventory.write_text(HEAD + checks)
    evidence = workdir / f"ev-{time.monotonic_ns()}"
    subprocess.run([sys.executable, "-m", "pytest", f"--dr-inventory={inventory}", "-q",
                    "-p", "no:cacheprovider", f"--dr-evidence={evidence}", *args],
                   cwd=workdir, capture_output=True, text=True, timeout=120, check=False)
    results = (evidence / "results.jsonl").read_text().splitlines()
    observations = {}
    for line in (evidence / "observations" / "app01.jsonl").read_text().splitlines():
        observation = json.loads(line)
        observations[observation["key"]] = observation["details"]
    records = [json.loads(line) for line in results if line.strip()]
    for record in records:
        record["details"] = observations.get(str(record["key"]), {})
    return records


def replica_age(lab: Lab) -> float:
    done = lab.exec("app01", ["cat", REPLICA], timeout=10)
    if done.returncode != 0:
        return float("inf")  # none copied yet
    return time.time() - parse_beacon(done.stdout).timestamp()


def caught_up(lab: Lab, lag: float) -> None:
    deadline = time.monotonic() + 30
    while replica_age(lab) > lag + 1 and time.monotonic() < deadline:
        time.sleep(0.1)


def summary(name: str, values: list[float], unit: str) -> str:
    return (f"{name}: n={len(values)} median {statistics.median(values):.3f} {unit}, "
            f"min {min(values):.3f}, max {max(values):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drills", type=int, default=10)
    count = parser.parse_args().drills
    lag = ReplicationSimulator().lag
    rate_mbit = SourceLoad().rate * 8 / 1e6
    frozen: list[float] = []
    live: list[float] = []
    sizing: list[float] = []
    cost: dict[str, list[float]] = {"rpo": [], "replication": []}
    with fresh_lab() as lab, tempfile.TemporaryDirectory() as temporary:
        workdir = Path(temporary)
        caught_up(lab, lag)
        for _ in range(count):
            caught_up(lab, lag)
            with faults.stalled_replication(lab):
                launched = datetime.now(timezone.utc).isoformat()
                (record,) = drill(workdir, f"      rpo: [{{beacon: {REPLICA}}}]\n",
                                  f"--dr-launched-at={launched}")
            frozen.append(float(record["details"]["rpo_s"]) - lag)  # type: ignore[index]
        caught_up(lab, lag)
        for _ in range(count):
            (record,) = drill(workdir, f"      rpo: [{{beacon: {REPLICA}, "
                                       "recovery_point: now}]\n")
            live.append(float(record["details"]["rpo_s"]) - lag)  # type: ignore[index]
            cost["rpo"].append(float(record["duration_ms"]))  # type: ignore[arg-type]
        device = device_file(lab.context("src01"), "src01").read_text().strip()
        for _ in range(3):
            (record,) = drill(workdir, f"      replication: [{{link: 100Mbit/s, devices: "
                                       f"[{device}], window: 5s}}]\n")
            details = record["details"]
            sizing.append(float(details["average_mbit_s"]))  # type: ignore[index]
            cost["replication"].append(float(record["duration_ms"]))  # type: ignore[arg-type]
    print(f"simulator lag {lag} s; known write rate {rate_mbit:.3f} Mbit/s")
    print(summary("frozen (DRS-like) RPO error (measured - lag)", frozen, "s"))
    print(summary("live standby RPO error (measured - lag)", live, "s"))
    print(summary("sizing, window 5 s", sizing, "Mbit/s") +
          f"; error median {100 * (statistics.median(sizing) / rate_mbit - 1):+.2f} %")
    print(summary("rpo check duration (live, with the source clock)", cost["rpo"], "ms"))
    print(summary("replication check duration (window 5 s)", cost["replication"], "ms"))


if __name__ == "__main__":
    main()
