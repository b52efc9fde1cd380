"""What the evidence bundle costs: a local drill (connection type local, real sockets on
127.0.0.1, no lab needed) of HOSTS x CHECKS reach checks, run without and with --dr-evidence,
interleaved, medians and ratios; then the report's render time for that bundle and for a
synthetic estate 20 times larger.

Usage: python benchmarks/evidence_overhead.py [runs] [hosts] [checks per host]
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def serve() -> int:
    server = socket.create_server(("127.0.0.1", 0), backlog=512)

    def loop() -> None:
        while True:
            connection, _ = server.accept()
            connection.close()

    threading.Thread(target=loop, daemon=True).start()
    port: int = server.getsockname()[1]
    return port


def inventory(directory: Path, hosts: int, ports: list[int]) -> Path:
    lines = ["version: 1", "drill: {name: bench, rto: 1h}",
             "defaults: {timeout: 5s, connection: {type: local}}", "hosts:"]
    for h in range(hosts):
        lines.append(f"  host{h:04d}:\n    checks:\n      reach:")
        lines += [f'        - {{target: "127.0.0.1:{port}"}}' for port in ports]
    path = directory / "site.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(directory: Path, extra: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--dr-inventory=site.yaml", *extra], cwd=directory,
                          capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"drill failed with {extra}: {done.stdout[-2000:]}")
    return elapsed


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    hosts = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    checks = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    ports = [serve() for _ in range(checks)]
    configs = {"--junitxml": ["--junitxml=drill.xml"],
               "--junitxml --dr-evidence": ["--junitxml=drill.xml", "--dr-evidence=EV"]}
    times: dict[str, list[float]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory(prefix="drcheck-bench-") as temporary:
        directory = Path(temporary)
        inventory(directory, hosts, ports)
        for index in range(runs):
            for name, extra in configs.items():
                evidence = directory / f"ev{index}"
                times[name].append(run(directory, [e.replace("EV", str(evidence))
                                                   for e in extra]))
        base = statistics.median(times["--junitxml"])
        print(f"local drill, {hosts} hosts x {checks} checks = {hosts * checks} results, "
              f"{runs} runs each, interleaved")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:26s} median {median:6.2f} s  min {min(values):6.2f} s  "
                  f"overhead {median - base:+6.3f} s ({median / base:5.2f}x)")

        from pytest_drcheck.evidence.bundle import load
        from pytest_drcheck.evidence.report import render_report

        drill, records, _ = load(directory / "ev0")
        size = len((directory / "ev0" / "report.html").read_bytes())
        renders = []
        for _ in range(runs):
            started = time.perf_counter()
            render_report(drill, records)
            renders.append(time.perf_counter() - started)
        print(f"  report render, {len(records)} results: median "
              f"{statistics.median(renders) * 1000:.0f} ms, {size / 1024:.0f} KiB")
        big = []
        for copy in range(20):
            for record in records:
                clone = json.loads(json.dumps(record))
                clone["host"] = f"{record['host']}-{copy:02d}"
                clone["key"] = f"{clone['host']}::{record['check']}[{record['subject']}]"
                big.append(clone)
        started = time.perf_counter()
        html = render_report(drill, big)
        print(f"  report render, {len(big)} results: "
              f"{(time.perf_counter() - started) * 1000:.0f} ms, {len(html) / 1024:.0f} KiB")
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
