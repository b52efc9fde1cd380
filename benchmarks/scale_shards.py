"""1,000 hosts (issue 11): one drcheck run against N recovery instances, then the same N as
``--dr-shard=K/S`` runs (started together, as S CI jobs would be) merged with ``drcheck merge``;
the merged bundle must hold the same results as the single run.

The site is the scale benchmark's (``scale_site.py``: network namespaces on 10.76/16, each
instance with its own sshd, shared dnsmasq and slapd, ``tc netem`` delay when the kernel has
it), without per-instance chronyd: the suite here is the network part of the scale suite (DNS
at the on-prem server, an open and a closed port, the NIC), which is what stresses a shared
destination and the client's sockets at this size.

Prints: wall, client CPU (ms per host) and peak RSS (MiB, and KiB per host) of the single run
and of each shard; how many results differ between the single run and the merged shards (key
by key: outcome and observed value); how many results name "Too many open files" or a refused
channel. Needs root. Usage:

  python benchmarks/scale_shards.py [--hosts 1000] [--shards 4] [--rtt 20] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import scale_inventory
import scale_site
import yaml

HERE = Path(__file__).resolve().parent
# What a starved client or a flooded server looks like in a result's message.
STARVED = ("Too many open files", "open failed", "administratively prohibited",
           "ChannelException", "connection closed after 0 of")
# Durations in an observed value ("connected in 414 ms") differ from run to run.
DURATION = re.compile(r"\d+(?:\.\d+)? ?(?:ms|s)\b")


@dataclass
class Run:
    label: str
    wall: float
    cpu: float
    rss_mib: float
    exit_code: int
    bundle: Path


def suite_inventory(site: scale_site.ScaleSite, hosts: int) -> dict[str, Any]:
    inventory = scale_inventory.inventory(site, hosts)
    checks = {
        "dns": [{"site": True, "resolver": "onprem"}],
        "reach": [{"target": f"{scale_site.LDAP_ADDR}:389"},
                  {"target": f"{scale_site.LDAP_ADDR}:{scale_site.CLOSED_PORT}",
                   "expect": "closed"}],
        "nic": [{"count": 1, "mode": "change", "subnets": ["10.76.0.0/20"]}],
    }
    for host in inventory["hosts"].values():
        host["checks"] = checks
    # No agent or time check here: the site's instances run no chronyd.
    del inventory["site"]["agents"], inventory["site"]["time"]
    return inventory


def start(label: str, argv: list[str], workdir: Path, bundle: Path
          ) -> tuple[str, subprocess.Popen[bytes], float, Path]:
    log = workdir / f"{label}.log"
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with log.open("wb") as out:
        child = subprocess.Popen(argv, cwd=workdir, env=env, stdout=out,
                                 stderr=subprocess.STDOUT)
    return label, child, time.perf_counter(), bundle


def wait_all(started: list[tuple[str, subprocess.Popen[bytes], float, Path]],
             timeout: float) -> list[Run]:
    runs: dict[str, Run] = {}
    deadline = time.perf_counter() + timeout
    while len(runs) < len(started):
        for label, child, began, bundle in started:
            if label in runs:
                continue
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if not pid and time.perf_counter() > deadline:
                child.kill()
                pid, status, usage = os.wait4(child.pid, 0)
            if pid:
                runs[label] = Run(label, time.perf_counter() - began,
                                  usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                                  os.waitstatus_to_exitcode(status), bundle)
        time.sleep(0.05)
    return [runs[label] for label, *_ in started]


def pytest_argv(inventory: Path, bundle: Path, workdir: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "-p", "no:hypothesispytest", f"--rootdir={workdir}",
            f"--dr-inventory={inventory}", f"--dr-evidence={bundle}", *extra]


def results(bundle: Path) -> dict[str, dict[str, Any]]:
    records = {}
    for line in (bundle / "results.jsonl").read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            records[str(record["key"])] = record
    return records


def verdict(record: dict[str, Any] | None) -> tuple[str, str] | None:
    if record is None:
        return None
    return str(record["outcome"]), DURATION.sub("<t>", str(record["observed"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rtt", type=float, default=20.0, help="round trip in ms")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--drcheck-args", default="", help="extra pytest args for drcheck")
    parser.add_argument("--keep", action="store_true", help="leave the site up afterwards")
    args = parser.parse_args()
    site = scale_site.ScaleSite(args.hosts, args.rtt, clocks=False)
    workdir = Path(tempfile.mkdtemp(prefix="drcheck-shards-"))
    inventory = workdir / "inventory.yaml"
    inventory.write_text(yaml.dump(suite_inventory(site, args.hosts),
                                   Dumper=scale_inventory.PlainDumper, sort_keys=False))
    extra = args.drcheck_args.split()
    kernel = scale_site.widen_kernel_tables(args.hosts)
    try:
        with scale_site.locked():
            began = time.monotonic()
            # The lab's errors are raised `from None`: one raised by the teardown below would
            # hide why the build failed, so say it first.
            try:
                _, links = scale_site.build(site)
            except BaseException as exc:
                print(f"site build failed: {type(exc).__name__}: {exc}", flush=True)
                raise
            print(f"site up: {args.hosts} instances, {links}, "
                  f"built in {time.monotonic() - began:.1f} s", flush=True)
        with scale_site.locked():
            single = wait_all([start("single", pytest_argv(
                inventory, workdir / "single", workdir, extra), workdir, workdir / "single")],
                args.timeout)[0]
            print(f"single run: {single.wall:.1f} s, exit {single.exit_code}", flush=True)
            shards = wait_all([start(f"shard{k}", pytest_argv(
                inventory, workdir / f"shard{k}", workdir,
                [*extra, f"--dr-shard={k}/{args.shards}"]), workdir, workdir / f"shard{k}")
                for k in range(1, args.shards + 1)], args.timeout)
            print(f"shards: {max(r.wall for r in shards):.1f} s", flush=True)
    finally:
        if not args.keep:
            with scale_site.locked():
                scale_site.teardown(site)
            scale_site.restore_kernel_tables(kernel)
    merged = workdir / "merged"
    merge = subprocess.run([sys.executable, "-m", "pytest_drcheck.cli", "merge",
                            *(str(r.bundle) for r in shards), "-o", str(merged)],
                           capture_output=True, text=True)
    print(merge.stdout.strip() or merge.stderr.strip())
    report(args, single, shards, merged, workdir)


def report(args: argparse.Namespace, single: Run, shards: list[Run], merged: Path,
           workdir: Path) -> None:
    n = args.hosts
    print(f"\n{n} hosts, {args.shards} shards started together, {os.cpu_count()} CPUs; "
          f"logs in {workdir}")
    print(f"{'run':8s} {'wall s':>8} {'cpu ms/host':>12} {'peak RSS MiB':>13} "
          f"{'KiB/host':>9} {'exit':>5}")
    per_shard = n / args.shards
    for run in [single, *shards]:
        hosts = n if run is single else per_shard
        print(f"{run.label:8s} {run.wall:8.1f} {1000 * run.cpu / hosts:12.1f} "
              f"{run.rss_mib:13.1f} {1024 * run.rss_mib / hosts:9.0f} {run.exit_code:>5}")
    one = results(single.bundle)
    together = results(merged) if (merged / "results.jsonl").exists() else {}
    differ = [k for k in one.keys() | together.keys()
              if verdict(one.get(k)) != verdict(together.get(k))]
    outcomes: dict[str, int] = {}
    for record in one.values():
        outcomes[str(record["outcome"])] = outcomes.get(str(record["outcome"]), 0) + 1
    print(f"single run: {len(one)} results {outcomes}")
    print(f"merged shards: {len(together)} results; differing from the single run "
          f"(outcome, or observed value with durations masked): {len(differ)}")
    for key in sorted(differ)[:10]:
        print(f"  {key}: single {one.get(key, {}).get('message')!r} / "
              f"merged {together.get(key, {}).get('message')!r}")
    for label, records in (("single", one), ("merged", together)):
        starved = [r for r in records.values()
                   if any(s in str(r.get("message")) for s in STARVED)]
        print(f"{label}: results naming exhausted files or refused channels: {len(starved)}")
        for record in starved[:5]:
            print(f"  {record['key']}: {record['message']}")


if __name__ == "__main__":
    main()
