"""Collection cost (issue 11): ``pytest --collect-only`` of an inventory with N checks against
pytest collecting N trivial parametrized items, medians of interleaved runs and the difference.

Two inventories per size: the same ten reach entries on every host (a drill's usual shape:
hosts of one role share their checks), and every entry distinct (nothing for the loader to
reuse). Wall time and CPU time (user+sys of the pytest process) are both shown: on a shared,
busy machine the CPU time is the steadier figure.

No network: collection does not connect (addresses are in 10.76.0.0/16, the scale benchmark's
guarded range, and are never dialled here).
Usage: python benchmarks/collection.py [--baseline DIR] [runs] [N ...]
(default: 5 runs, N = 1000 10000). To measure another checkout alone:
PYTHONPATH=/path/to/checkout python benchmarks/collection.py. With --baseline, the drcheck
cases also run from that checkout (e.g. an export of main), interleaved with this one's, so a
change is measured under the same load: on a shared machine, runs apart are not comparable.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CHECKS_PER_HOST = 10
TRIVIAL = "pytest, trivial items"
SHARED = "drcheck, shared entries"
DISTINCT = "drcheck, distinct entries"


def write_inventory(directory: Path, checks: int, distinct: bool = False) -> Path:
    hosts = max(1, checks // CHECKS_PER_HOST)

    def port(host: int, entry: int) -> int:
        return 1000 + (host * CHECKS_PER_HOST if distinct else 0) + entry

    doc = {
        "version": 1,
        "drill": {"name": "collection"},
        "defaults": {"connection": {"type": "ssh", "user": "root"}},
        "hosts": {f"h{i:05d}": {
            "address": f"10.76.{1 + i // 250}.{1 + i % 250}",
            "checks": {"reach": [{"target": f"10.76.0.20:{port(i, p)}"}
                                 for p in range(CHECKS_PER_HOST)]}} for i in range(hosts)},
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_trivial(directory: Path, items: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "test_trivial.py"
    path.write_text("import pytest\n\n\n"
                    f"@pytest.mark.parametrize('i', range({items}))\n"
                    "def test_item(i):\n    pass\n")
    return path


def timed(argv: list[str], cwd: Path, checkout: str | None = None
          ) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds of the child, and its last line (pytest's summary)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if checkout is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [checkout, env.get("PYTHONPATH")]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed, cpu, lines[-1] if lines else ""


Case = tuple[list[str], Path, str | None]  # argv, directory, checkout to import drcheck from


def configs(directory: Path, checks: int, baseline: str | None = None) -> dict[str, Case]:
    base = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
            "-p", "no:hypothesispytest"]
    # Apart: collected from one directory, the drcheck run would also collect the test file.
    plain, shared, distinct = (directory / f"{name}-{checks}"
                               for name in ("plain", "shared", "distinct"))
    cases: dict[str, Case] = {
        TRIVIAL: ([*base, str(write_trivial(plain, checks)), f"--rootdir={plain}"], plain, None),
        SHARED: ([*base, f"--dr-inventory={write_inventory(shared, checks)}",
                  f"--rootdir={shared}"], shared, None),
        DISTINCT: ([*base, f"--dr-inventory={write_inventory(distinct, checks, True)}",
                    f"--rootdir={distinct}"], distinct, None),
    }
    if baseline is not None:
        for name in (SHARED, DISTINCT):
            argv, cwd, _ = cases[name]
            cases[f"{name} (baseline)"] = (argv, cwd, baseline)
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", metavar="DIR",
                        help="another checkout whose drcheck is measured alongside")
    parser.add_argument("runs", nargs="?", type=int, default=5)
    parser.add_argument("sizes", nargs="*", type=int)
    args = parser.parse_args()
    baseline = str(Path(args.baseline).resolve()) if args.baseline else None
    directory = Path(tempfile.mkdtemp(prefix="drcheck-collect-"))
    try:
        measure(directory, args.runs, args.sizes or [1_000, 10_000], baseline)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def measure(directory: Path, runs: int, sizes: list[int], baseline: str | None = None) -> None:
    cases = {size: configs(directory, size, baseline) for size in sizes}
    walls: dict[tuple[int, str], list[float]] = {}
    cpus: dict[tuple[int, str], list[float]] = {}
    summaries: dict[tuple[int, str], str] = {}
    for named in cases.values():  # warm-up: bytecode caches
        for argv, cwd, checkout in named.values():
            timed(argv, cwd, checkout)
    for _ in range(runs):
        for size, named in cases.items():
            for name, (argv, cwd, checkout) in named.items():
                wall, cpu, summaries[size, name] = timed(argv, cwd, checkout)
                walls.setdefault((size, name), []).append(wall)
                cpus.setdefault((size, name), []).append(cpu)
    load = os.getloadavg()[0]
    print(f"pytest --collect-only, medians of {runs} interleaved runs (load average {load:.1f})")
    print(f"  {'items':>6s}  {'':37s} {'wall':>7s} {'cpu':>7s}   pytest's summary")
    for size in sizes:
        wall = {name: statistics.median(walls[size, name]) for name in cases[size]}
        cpu = {name: statistics.median(cpus[size, name]) for name in cases[size]}
        for name in cases[size]:
            print(f"  {size:6d}  {name:37s} {wall[name]:6.2f}s {cpu[name]:6.2f}s   "
                  f"({summaries[size, name]})")
        for name in (n for n in cases[size] if n != TRIVIAL):
            print(f"  {size:6d}  {name} adds {wall[name] - wall[TRIVIAL]:+.2f} s wall "
                  f"({wall[name] / wall[TRIVIAL]:.2f}x), {cpu[name] - cpu[TRIVIAL]:+.2f} s CPU "
                  f"({cpu[name] / cpu[TRIVIAL]:.2f}x) over pytest's own collection")


if __name__ == "__main__":
    main()
