"""Wall time of an egress matrix whose cells all time out (expected-denied, black-holed
destinations), against the per-cell timeout and the serial sum: 3 lab hosts x 8 cells = 24
cells. Medians of repeated runs, side by side with --dr-per-host=1 --dr-workers=1.

Needs root and a free lab lock (brings the lab up and down itself).
Usage: python benchmarks/egress_matrix.py [runs]
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lablock import fresh_lab

CELL_TIMEOUT = 2.0
PORTS = range(9001, 9009)
HOSTS = (("app01", "10.77.0.11"), ("app02", "10.77.0.12"), ("db01", "10.77.0.13"))


def inventory() -> str:
    cells = "".join(f'        - {{destination: "10.77.0.60:{port}", expect: denied, '
                    f"connect_timeout: {CELL_TIMEOUT}}}\n" for port in PORTS)
    hosts = "".join(f"  {name}:\n    address: {address}\n    checks:\n      egress:\n{cells}"
                    for name, address in HOSTS)
    return ("version: 1\ndrill: {name: egress-matrix}\ndefaults:\n  connection:\n"
            "    identity_file: /var/tmp/drcheck-lab/ssh/id_ed25519\n"
            "    known_hosts: /var/tmp/drcheck-lab/ssh/known_hosts\n"
            f"hosts:\n{hosts}")


def timed(path: Path, *extra: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--dr-inventory={path}", *extra], cwd=path.parent,
                          capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:])
    return elapsed


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    cells = len(PORTS) * len(HOSTS)
    with fresh_lab() as lab, tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "site.yaml"
        path.write_text(inventory())
        with contextlib.ExitStack() as stack:
            for port in PORTS:
                stack.enter_context(lab.firewall("proxy01", port, "drop"))
            concurrent = [timed(path) for _ in range(runs)]
            serial = [timed(path, "--dr-workers=1", "--dr-per-host=1")]
    median = statistics.median(concurrent)
    print(f"egress matrix: {cells} expected-denied cells, each timing out after "
          f"{CELL_TIMEOUT:g} s (serial sum {cells * CELL_TIMEOUT:g} s)")
    print(f"  concurrent (defaults)     median {median:6.2f} s over {runs} runs "
          f"= {median / CELL_TIMEOUT:4.2f}x one cell timeout")
    print(f"  --dr-workers=1 --dr-per-host=1   {serial[0]:6.2f} s "
          f"= {serial[0] / median:4.1f}x slower")


if __name__ == "__main__":
    main()
