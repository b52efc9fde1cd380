"""Load time and peak memory of the largest inventory the loader accepts in practice: the lab's
site and suites, applied to many hosts, each with checks of its own, just under the file-size
bound. Each run is a fresh interpreter (imports and caches do not carry over); medians of the
runs; peak memory is the process's ru_maxrss, and what the load added to it.

No network, no root. Usage: python benchmarks/inventory_load.py [hosts] [runs]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEASURE = """
import json, resource, sys, time
from pytest_drcheck.checks import registry
from pytest_drcheck.inventory import load_plan
for name in registry.names():
    registry.get(name)  # imports of every check family: not the load's cost
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
started, cpu = time.perf_counter(), time.process_time()
plan = load_plan(sys.argv[1])
print(json.dumps({"hosts": len(plan.hosts), "checks": len(plan.items),
                  "seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu,
                  "before": before,
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

def inventory(hosts: int) -> str:
    lab = (REPO / "inventories" / "lab.yaml").read_text(encoding="utf-8")
    head = lab[:lab.index("\nhosts:\n")]
    lines = [head, "", "hosts:", "  logs01: {address: 10.77.0.40}",
             "  backup01: {address: 10.77.0.41}"]
    for number in range(hosts):
        octets = f"10.{80 + number // 65536}.{number // 256 % 256}.{number % 256}"
        lines += [f"  app{number:05d}:", f"    address: {octets}", "    groups: [recovery]",
                  "    checks:", "      reach:",
                  f"        - {{target: '10.77.0.{number % 250 + 1}:22'}}",
                  "        - {target: '10.77.0.11:3306', expect: closed}",
                  "      nic: [{count: 1, mode: change, subnets: [10.80.0.0/14]}]"]
    return "\n".join(lines) + "\n"


def main() -> None:
    # 8000 such hosts are ~1.9 MiB: the largest that fits the 2 MiB file bound.
    hosts = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "large.yaml"
        path.write_text(inventory(hosts), encoding="utf-8")
        size = path.stat().st_size
        results = []
        for _ in range(runs):
            done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], check=True,
                                  capture_output=True, text=True, cwd=REPO)
            results.append(json.loads(done.stdout))
    first = results[0]
    each = ", ".join(f"{r['seconds']:.2f}" for r in results)
    print(f"inventory: {size / 2**20:.2f} MiB, {first['hosts']} hosts, {first['checks']} checks "
          f"(lab site and suites on every host)")
    print(f"load time: median {statistics.median(r['seconds'] for r in results):.2f} s wall, "
          f"{statistics.median(r['cpu'] for r in results):.2f} s CPU of {runs} runs ({each})")
    print(f"peak memory: median ru_maxrss "
          f"{statistics.median(r['maxrss'] for r in results) / 2**20:.0f} MiB, of which the "
          f"load added {statistics.median(r['maxrss'] - r['before'] for r in results) / 2**20:.0f}"
          " MiB")

if __name__ == "__main__":
    main()
