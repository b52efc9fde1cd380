"""What the directory and time checks cost in the lab: the `ldap` and `time` checks of
inventories/lab.yaml (3 instances x 12 checks, over SSH), per check kind, from each check's
dr.duration_ms, median over repeated drills; the drill's wall time side by side with
--dr-workers=1 --dr-per-host=1 (everything one after the other).

Needs root and a free lab lock (brings the lab up and down itself).
Usage: python benchmarks/directory_time.py [runs]
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from lablock import fresh_lab

REPO = Path(__file__).resolve().parents[1]
SELECT = "(ldap or time) and not dns"


def kind(name: str) -> str:
    """'ldap[dc01.corp.example/ldaps@corp]' -> 'ldap ldaps (corp)', 'time[sync]' -> ..."""
    match = re.match(r"ldap\[[^/]+/([a-z-]+)@(\w+)\]", name)
    if match:
        return f"ldap {match.group(1)} ({match.group(2)})"
    return name


def drill(scratch: Path, *extra: str) -> tuple[float, dict[str, list[float]]]:
    xml = scratch / "drill.xml"
    started = time.perf_counter()
    # A copy inside the run's directory: -k also matches the inventory's path when it lies
    # outside the rootdir, and a checkout whose name holds "time" would select everything.
    (scratch / "lab.yaml").write_text((REPO / "inventories" / "lab.yaml").read_text())
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--dr-inventory=lab.yaml", "-k", SELECT,
                           f"--junitxml={xml}", *extra], cwd=scratch, capture_output=True,
                          text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stdout[-3000:])
    durations: dict[str, list[float]] = defaultdict(list)
    for case in ET.parse(xml).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        durations[kind(case.get("name", ""))].append(float(props["dr.duration_ms"] or 0))
    return elapsed, durations


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with fresh_lab(), tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        concurrent = [drill(scratch) for _ in range(runs)]
        serial = [drill(scratch, "--dr-workers=1", "--dr-per-host=1") for _ in range(runs)]
    print(f"{SELECT!r} of inventories/lab.yaml, {runs} drills each way; per-check "
          "dr.duration_ms, median over all instances and drills")
    print(f"{'check':<28} {'concurrent':>11} {'one at a time':>14}")
    for name in sorted(concurrent[0][1]):
        together = [d for _, durations in concurrent for d in durations[name]]
        alone = [d for _, durations in serial for d in durations[name]]
        print(f"{name:<28} {statistics.median(together):>8.0f} ms "
              f"{statistics.median(alone):>11.0f} ms")
    wall = statistics.median(e for e, _ in concurrent)
    wall_serial = statistics.median(e for e, _ in serial)
    count = sum(len(v) for v in concurrent[0][1].values())
    print(f"drill wall time for {count} checks (pytest process included): {wall:.2f} s "
          f"concurrent, {wall_serial:.2f} s one at a time ({wall_serial / wall:.1f}x)")


if __name__ == "__main__":
    main()
