"""Wall time of the lab drill: concurrent engine vs --dr-workers=1 (hosts one at a time) vs
--dr-workers=1 --dr-per-host=1 (fully serial), measured side by side, medians and ratios.

Needs root and the lab lock (brings the lab up and down itself).
Usage: python benchmarks/drill_concurrency.py [runs]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from lablock import fresh_lab

REPO = Path(__file__).resolve().parent.parent
CONFIGS = {
    "default (32 hosts x 4 checks)": [],
    "--dr-workers=1": ["--dr-workers=1"],
    "--dr-workers=1 --dr-per-host=1": ["--dr-workers=1", "--dr-per-host=1"],
}


def run_once(extra: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--dr-inventory=inventories/lab.yaml", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    if done.returncode != 0:
        raise SystemExit(f"drill failed with {extra}: {summary}")
    return elapsed, summary


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    summary = ""
    with fresh_lab():
        for _ in range(runs):  # interleaved so machine noise hits every configuration alike
            for name, extra in CONFIGS.items():
                elapsed, summary = run_once(extra)
                times[name].append(elapsed)
    print(f"lab drill, {runs} runs each, interleaved; last summary: {summary}")
    base = statistics.median(times[next(iter(CONFIGS))])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:34s} median {median:6.2f} s  min {min(values):6.2f} s  "
              f"ratio to default {median / base:5.2f}x")


if __name__ == "__main__":
    main()
