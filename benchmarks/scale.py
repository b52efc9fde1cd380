"""Scale benchmark (issue 11): drcheck against N recovery instances across a delayed link,
side by side with the same checks written by hand for testinfra (plain pytest and ``-n 8``)
and with a bare-paramiko floor doing the same remote work without a framework.

N instances are network namespaces with their own sshd and chronyd (the lab's machinery, on
10.76.0.0/16, which the isolation guard covers from before any namespace exists until the last
is gone), plus shared DNS (dnsmasq), LDAP (slapd) and NTP (chronyd) servers; every
instance's link has ``tc netem`` delay (``--rtt`` ms round trip, 20 by default), or, on a
kernel without netem (this machine's), the runner reaches every instance through a user-space
delaying relay with the same round trip (``scale_relay.py``; its CPU is shown apart). Per
instance: dns (system resolver and the on-prem server, 4 names each), reach (open and closed),
agent, nic, time and ldap: the checks ``scale_inventory.py`` writes.

Runs are interleaved (every configuration once per round) so that the noise of this shared
machine hits all of them alike; the table shows medians. The lab lock is held for each round
and released between rounds, so the lab's own tests never overlap a measurement.

Needs root. Usage:
  python benchmarks/scale.py [--hosts 1,10,50,100] [--runs 3] [--rtt 20]
                             [--modes drcheck,paramiko,testinfra,testinfra-n8] [--keep]
A mode ``drcheck-wN`` is drcheck with ``--dr-workers=N`` (e.g. ``--modes drcheck,drcheck-w8``
to show that the default is never slower than a smaller setting). ``--baseline DIR`` adds the
mode ``drcheck-base``: drcheck imported from DIR, a copy of another revision
(``git archive REV | tar -x -C DIR``), so a change is measured against its parent in the same
rounds. The "threads" column is the peak thread count of the client process
(/proc/PID/status, sampled every 10 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import scale_inventory
import scale_relay
import scale_site

from pytest_drcheck.lab import procs

HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")
MODES = ("drcheck", "paramiko", "testinfra", "testinfra-n8")


@dataclass
class Sample:
    wall: float
    cpu: float  # user+sys of the client and its waited-for children, seconds
    sshd_cpu: float  # user+sys of the instances' sshd (and sessions), seconds
    rss_mib: float  # peak RSS of the largest client process
    summary: str
    threads: int = 0  # peak thread count of the client process (sampled)
    relay_cpu: float = 0.0  # user+sys of the delaying relay during the run, seconds


@dataclass
class Cell:
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)


def _sshd_ticks(lab: object, names: tuple[str, ...]) -> int:
    state = lab.state()  # type: ignore[attr-defined]
    total = 0
    for name in names:
        daemon = state.hosts[name].daemons.get("sshd")
        if daemon is None or not procs.is_running(daemon.proc):
            continue
        total += procs.cpu_ticks(daemon.proc.pid, children=True) or 0
    return total


def command(mode: str, files: dict[str, Path], workdir: Path, extra: list[str],
            baseline: str = "") -> tuple[list[str], dict[str, str]]:
    # An outer PYTHONPATH stays behind ours: a copy of another revision can be measured.
    outer = baseline if mode == "drcheck-base" else os.environ.get("PYTHONPATH", "")
    path = os.pathsep.join(p for p in (str(HERE), outer) if p)
    env = dict(os.environ, PYTHONPATH=path, SCALE_HOSTS=str(files["hosts"]),
               SCALE_SSH=str(files["ssh_config"]))
    # A user's runs read compiled bytecode: without it every run recompiles (and pytest
    # re-rewrites) every module, which is not what is being measured.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # hypothesis (a test dependency of this repo) imports itself at the terminal summary of
    # any pytest run: ~1 s of CPU that neither side of the comparison needs.
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
              "-p", "no:hypothesispytest", f"--rootdir={workdir}"]
    if mode in ("drcheck", "drcheck-base") or mode.startswith("drcheck-w"):
        workers = ([f"--dr-workers={mode.removeprefix('drcheck-w')}"]
                   if mode.startswith("drcheck-w") else [])
        return [*pytest, f"--dr-inventory={files['inventory']}", *workers, *extra], env
    if mode == "paramiko":
        return [sys.executable, str(HERE / "scale_floor.py"), str(files["hosts"])], env
    xdist = ["-n", "8"] if mode == "testinfra-n8" else []
    return [*pytest, *xdist, str(HERE / "scale_testinfra.py")], env


def measure(argv: list[str], env: dict[str, str], cwd: Path, lab: object,
            names: tuple[str, ...], timeout: float, relay: scale_relay.Relay | None) -> Sample:
    before = _sshd_ticks(lab, names)
    relay_before = relay.cpu_seconds() if relay is not None else 0.0
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        deadline = started + timeout
        threads = 0
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            threads = max(threads, _threads(child.pid))
            if time.perf_counter() > deadline:
                child.kill()
                pid, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace").strip().splitlines()
    time.sleep(0.3)  # the per-connection sshd processes exit and are reaped
    sshd = (_sshd_ticks(lab, names) - before) / TICK
    summary = text[-1] if text else f"exit {child.returncode}"
    if child.returncode not in (0,):
        summary = f"exit {child.returncode}: {summary}"
    relay_cpu = relay.cpu_seconds() - relay_before if relay is not None else 0.0
    return Sample(wall, usage.ru_utime + usage.ru_stime, sshd, usage.ru_maxrss / 1024, summary,
                  threads, relay_cpu)


def _threads(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines()
                 if line.startswith("Threads:")), 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="1,10,50,100")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rtt", type=float, default=20.0, help="round trip in ms")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--drcheck-args", default="", help="extra pytest args for drcheck")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--testinfra-max", type=int, default=50,
                        help="largest N for the testinfra modes (they are slow)")
    parser.add_argument("--keep", action="store_true", help="leave the site up afterwards")
    parser.add_argument("--baseline", default="",
                        help="a copy of another revision, measured as mode drcheck-base")
    args = parser.parse_args()
    sizes = [int(n) for n in args.hosts.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    if args.baseline:
        if not (Path(args.baseline) / "pytest_drcheck" / "__init__.py").is_file():
            parser.error(f"--baseline {args.baseline}: no pytest_drcheck package there")
        modes.append("drcheck-base")
    site = scale_site.ScaleSite(max(sizes), args.rtt)
    workdir = Path(tempfile.mkdtemp(prefix="drcheck-scale-"))
    cells: dict[tuple[int, str], Cell] = {(n, m): Cell() for n in sizes for m in modes}
    extra = args.drcheck_args.split()
    links = ""
    relay: scale_relay.Relay | None = None
    kernel = scale_site.widen_kernel_tables(site.hosts)
    try:
        with scale_site.locked():
            started = time.monotonic()
            lab, links = scale_site.build(site)
            print(f"site up: {site.hosts} instances, {links}, "
                  f"built in {time.monotonic() - started:.1f} s", flush=True)
        if args.rtt > 0 and links.startswith("NO DELAY"):
            # No netem on this kernel: the same round trip from a user-space relay instead.
            relay = scale_relay.start([site.address(n) for n in site.instances], args.rtt,
                                      workdir)
            links = (f"delaying relay (no netem): {args.rtt / 2:g} ms each way on the "
                     f"runner-to-instance link, {args.rtt:g} ms round trip; measured connect + "
                     f"SSH banner {relay.banner_round_trip_ms():.1f} ms (two round trips)")
            print(links, flush=True)
        mapping = relay.addresses if relay is not None else None
        files = {n: scale_inventory.write(site, n, workdir, mapping) for n in sizes}
        for mode in modes:  # warm-up: bytecode caches written, page cache filled
            argv, env = command(mode, files[sizes[0]], workdir, extra, args.baseline)
            subprocess.run(argv, env=env, cwd=workdir, capture_output=True, timeout=600)
        for round_no in range(args.runs):
            with scale_site.locked():
                for n in sizes:
                    names = site.instances[:n]
                    for mode in modes:
                        if mode.startswith("testinfra") and n > args.testinfra_max:
                            continue
                        argv, env = command(mode, files[n], workdir, extra, args.baseline)
                        sample = measure(argv, env, workdir, lab, names, args.timeout, relay)
                        cells[n, mode].samples.append(sample)
                        print(f"round {round_no + 1} N={n:<4} {mode:13s} {sample.wall:7.2f} s "
                              f"cpu {sample.cpu:6.2f} s  {sample.summary}", flush=True)
    finally:
        if relay is not None:
            relay.stop()
        if not args.keep:
            with scale_site.locked():
                scale_site.teardown(site)
            scale_site.restore_kernel_tables(kernel)
    report(sizes, modes, cells, args, links)


def report(sizes: list[int], modes: list[str], cells: dict[tuple[int, str], Cell],
           args: argparse.Namespace, links: str) -> None:
    print(f"\nscale benchmark: {links}; medians of {args.runs} interleaved "
          f"runs, {os.cpu_count()} CPUs")
    print(f"{'N':>5} {'mode':13s} {'wall s':>8} {'cpu ms/host':>12} {'sshd ms/host':>13} "
          f"{'peak RSS MiB':>13} {'threads':>8} {'wall/N=1':>9} {'wall/floor':>11} "
          f"{'cpu/floor':>10} {'relay ms/host':>14}")
    first = sizes[0]
    for n in sizes:
        for mode in modes:
            cell = cells[n, mode]
            if not cell.samples:
                continue
            wall, cpu = cell.median("wall"), cell.median("cpu")
            base = cells[first, mode].median("wall") if cells[first, mode].samples else wall
            floor = cells.get((n, "paramiko"))
            wall_floor = cpu_floor = "-"
            if floor is not None and floor.samples:
                wall_floor = f"{wall / floor.median('wall'):.2f}x"
                cpu_floor = f"{cpu / floor.median('cpu'):.2f}x"
            print(f"{n:>5} {mode:13s} {wall:8.2f} {1000 * cpu / n:12.1f} "
                  f"{1000 * cell.median('sshd_cpu') / n:13.1f} {cell.median('rss_mib'):13.1f} "
                  f"{cell.median('threads'):8.0f} {wall / base:8.2f}x {wall_floor:>11} "
                  f"{cpu_floor:>10} {1000 * cell.median('relay_cpu') / n:14.1f}")
        if "drcheck" in modes and cells[n, "drcheck"].samples:
            ours = cells[n, "drcheck"].median("wall")
            others = [m for m in modes if m.startswith(("testinfra", "drcheck-w", "drcheck-b"))]
            for mode in others:
                if cells[n, mode].samples:
                    print(f"{'':>5} {mode} / drcheck wall: "
                          f"{cells[n, mode].median('wall') / ours:.2f}x")
    print("last summaries:")
    for (n, mode), cell in cells.items():
        if cell.samples:
            print(f"  N={n} {mode}: {cell.samples[-1].summary}")
    raw = {f"{n}/{m}": [s.__dict__ for s in c.samples] for (n, m), c in cells.items()}
    (Path(tempfile.gettempdir()) / "scale-last.json").write_text(json.dumps(raw, default=str))


if __name__ == "__main__":
    main()
