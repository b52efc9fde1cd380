"""What one more check of a kind costs on one lab host, and how many TCP connections a host's
named-resolver queries make to the resolver.

Each drill is the engine (in-process, the plugin's default settings) checking app01 alone:
connect, batch, checks, close. Drills of every configuration are interleaved, repeated, and
their wall times' medians compared: 1 vs 8 `dns` named-resolver checks, 1 vs 8 `dns`
system-resolver checks, 1 vs 6 `nic` properties; the marginal cost is the difference over the
added checks. Connections to the resolver are counted by an nftables counter of TCP SYNs to
10.77.0.53:53 inside dns01's namespace (its own table, removed at the end).

With ``--before DIR`` (a checkout of older code, e.g. ``git archive`` of a commit), each
round also runs the same drills with that code (a child process per round and code, its
imports outside the timing), and the figures are printed side by side.

Needs root and the lab lock (brings the lab up and down itself).
Usage: python benchmarks/dns_marginal.py [rounds] [--before DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_drcheck.lab.inventory_text import ssh_defaults

HERE = Path(__file__).resolve().parent

HEAD = """\
version: 1
sandbox: drcheck-lab
drill: {name: dns-marginal}
""" + ssh_defaults(timeout="20s", connect_timeout="5s", command_timeout="10s") + """\
site:
  dns:
    resolvers: {onprem: 10.77.0.53}
hosts:
  app01:
    address: 10.77.0.11
    checks:
"""
NAMES = {"dc01": "10.77.0.20", "dns01": "10.77.0.53", "ntp01": "10.77.0.30",
         "app02": "10.77.0.12", "db01": "10.77.0.13", "logs01": "10.77.0.40",
         "backup01": "10.77.0.41", "proxy01": "10.77.0.60"}
NIC = {"count": "count: 1", "names": "names: [eth0]",
       "addresses": "mode: change, subnets: [10.77.0.0/24]", "mtu": "mtu: 1500",
       "default_gateway": "default_gateway: null", "dns_servers": "dns_servers: [10.77.0.53]"}
NETNS = "drlab-dns01"
TABLE = "drcheck_bench_dns"


def dns_checks(count: int, named: bool) -> str:
    resolver = ", resolver: onprem" if named else ""
    lines = [f"        - {{name: {name}.corp.example, expect: {address}{resolver}}}"
             for name, address in list(NAMES.items())[:count]]
    return "      dns:\n" + "\n".join(lines) + "\n"


def nic_checks(count: int) -> str:
    return "      nic:\n        - {" + ", ".join(list(NIC.values())[:count]) + "}\n"


CONFIGS = {
    "dns named x1": dns_checks(1, True), "dns named x8": dns_checks(8, True),
    "dns system x1": dns_checks(1, False), "dns system x8": dns_checks(8, False),
    "nic x1": nic_checks(1), "nic x6": nic_checks(6),
}


def nft(*args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", NETNS, "nft", *args], check=True,
                          capture_output=True, text=True).stdout


def syn_count() -> int:
    match = re.search(r"packets (\d+)", nft("list", "table", "inet", TABLE))
    return int(match.group(1)) if match else -1


def drill(inventory: Path) -> tuple[float, int]:
    """Wall seconds of one engine run over the inventory, and the checks that passed."""
    from pytest_drcheck.engine import Engine
    from pytest_drcheck.inventory import load_plan
    from pytest_drcheck.model import Outcome
    from pytest_drcheck.targets.factory import TargetFactory

    plan = load_plan(inventory)
    engine = Engine(plan, TargetFactory())
    started = time.perf_counter()
    engine.select(plan.items)
    engine.start()
    results = [engine.result(item) for item in plan.items]
    elapsed = time.perf_counter() - started
    engine.close()
    bad = [r for r in results if r.outcome is not Outcome.PASSED]
    if bad:
        raise SystemExit(f"{inventory.name}: {bad[0].message}")
    return elapsed, len(results)


def worker(directory: Path) -> None:
    """One round of every configuration (after a warm-up drill), as JSON on stdout."""
    files = {name: directory / (re.sub(r"\W+", "-", name) + ".yaml") for name in CONFIGS}
    drill(files["dns named x1"])
    out: dict[str, tuple[float, int, int]] = {}
    for name, path in files.items():
        before = syn_count()
        wall, checks = drill(path)
        # Streams linger (net.dnsshared.LINGER) before they close: count after they did.
        time.sleep(2.5)
        out[name] = (wall, checks, syn_count() - before)
    print(json.dumps(out))


def round_of(directory: Path, code: Path | None) -> dict[str, tuple[float, int, int]]:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = f"{code}{os.pathsep}{HERE}"
    done = subprocess.run([sys.executable, str(HERE / "dns_marginal.py"), "--worker",
                           str(directory)], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker ({code or 'this checkout'}) failed:\n{done.stdout[-2000:]}"
                         f"{done.stderr[-2000:]}")
    result: dict[str, tuple[float, int, int]] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rounds", nargs="?", type=int, default=5)
    parser.add_argument("--before", type=Path)
    parser.add_argument("--worker", type=Path)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker)
        return
    from lablock import fresh_lab

    codes: dict[str, Path | None] = {"after": None}
    if args.before is not None:
        codes = {"before": args.before.resolve(), **codes}
    runs: dict[str, list[dict[str, tuple[float, int, int]]]] = {code: [] for code in codes}
    with fresh_lab(wait=3600), tempfile.TemporaryDirectory() as tmp:
        for name, checks in CONFIGS.items():
            (Path(tmp) / (re.sub(r"\W+", "-", name) + ".yaml")).write_text(HEAD + checks)
        nft("add", "table", "inet", TABLE)
        try:
            nft("add", "chain", "inet", TABLE, "input",
                "{ type filter hook input priority 0; policy accept; }")
            nft("add", "rule", "inet", TABLE, "input", "ip", "daddr", "10.77.0.53", "tcp",
                "dport", "53", "tcp", "flags", "syn", "counter")
            for _ in range(args.rounds):
                for code, path in codes.items():
                    runs[code].append(round_of(Path(tmp), path))
        finally:
            nft("delete", "table", "inet", TABLE)
    report(runs, args.rounds)


def report(runs: dict[str, list[dict[str, tuple[float, int, int]]]], rounds: int) -> None:
    codes = list(runs)
    print(f"app01 alone, engine with default settings, {rounds} interleaved rounds per code "
          "(medians); TCP: connections to the resolver 10.77.0.53:53 per drill")
    print(f"{'configuration':<15} {'tests':>5} " + " ".join(
        f"{code + ' wall':>12} {code + ' TCP':>11}" for code in codes))
    medians: dict[str, dict[str, float]] = {code: {} for code in codes}
    for name in CONFIGS:
        cells = []
        for code in codes:
            wall = statistics.median(r[name][0] for r in runs[code])
            medians[code][name] = wall
            tcp = statistics.median(r[name][2] for r in runs[code])
            cells.append(f"{wall * 1000:>9.0f} ms {tcp:>11.0f}")
        tests = runs[codes[-1]][0][name][1]
        print(f"{name:<15} {tests:>5} " + " ".join(cells))
    for small, large, added in (("dns named x1", "dns named x8", 7),
                                ("dns system x1", "dns system x8", 7),
                                ("nic x1", "nic x6", 5)):
        each = " ".join(
            f"{code} {(medians[code][large] - medians[code][small]) / added * 1000:6.1f} ms"
            for code in codes)
        print(f"one more {large.rsplit(' ', 1)[0]:<11} check: {each}")


if __name__ == "__main__":
    main()
