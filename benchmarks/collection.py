"""Collection cost (issue 11): ``pytest --collect-only`` of an inventory with N checks against
pytest collecting N trivial parametrized items, medians of interleaved runs and the difference.

No network: collection does not connect (addresses are in 10.76.0.0/16, the scale benchmark's
guarded range, and are never dialled here). Usage: python benchmarks/collection.py [N] [runs]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CHECKS_PER_HOST = 10


def write_inventory(directory: Path, checks: int) -> Path:
    hosts = max(1, checks // CHECKS_PER_HOST)
    doc = {
        "version": 1,
        "drill": {"name": "collection"},
        "defaults": {"connection": {"type": "ssh", "user": "root"}},
        "hosts": {f"h{i:05d}": {
            "address": f"10.76.{1 + i // 250}.{1 + i % 250}",
            "checks": {"reach": [{"target": f"10.76.0.20:{1000 + p}"}
                                 for p in range(CHECKS_PER_HOST)]}} for i in range(hosts)},
    }
    path = directory / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_trivial(directory: Path, items: int) -> Path:
    path = directory / "test_trivial.py"
    path.write_text("import pytest\n\n\n"
                    f"@pytest.mark.parametrize('i', range({items}))\n"
                    "def test_item(i):\n    pass\n")
    return path


def timed(argv: list[str], cwd: Path) -> tuple[float, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    lines = done.stdout.strip().splitlines()
    return elapsed, lines[-1] if lines else done.stderr.strip()[-200:]


def main() -> None:
    checks = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    directory = Path(tempfile.mkdtemp(prefix="drcheck-collect-"))
    # Apart: collected from one directory, the drcheck run would also collect the test file.
    (directory / "plain").mkdir()
    (directory / "drill").mkdir()
    base = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
            "-p", "no:hypothesispytest"]
    configs = {
        "pytest, trivial items": [*base, str(write_trivial(directory / "plain", checks))],
        "drcheck inventory": [*base, f"--dr-inventory="
                              f"{write_inventory(directory / 'drill', checks)}"],
    }
    times: dict[str, list[float]] = {name: [] for name in configs}
    summaries: dict[str, str] = {}
    cwd = {"pytest, trivial items": directory / "plain", "drcheck inventory": directory / "drill"}
    for name, argv in configs.items():  # warm-up: bytecode caches
        timed(argv, cwd[name])
    for _ in range(runs):
        for name, argv in configs.items():
            elapsed, summaries[name] = timed([*argv, f"--rootdir={cwd[name]}"], cwd[name])
            times[name].append(elapsed)
    print(f"collection of {checks} items, medians of {runs} interleaved runs")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"  {name:24s} {median:6.2f} s   ({summaries[name]})")
    trivial, ours = medians.values()
    print(f"  drcheck adds {ours - trivial:+.2f} s over pytest's own collection")


if __name__ == "__main__":
    main()
