"""The drill lifecycle's cost against the local endpoints (tests/aws/fakeaws.py in front of moto
in server mode): API calls per phase for N hosts, and the wall time of `drcheck drill launch`
and `drcheck drill terminate` (the CLI in-process: inventory load, clients, calls), medians of
--runs. DRS's own launch time is not ours: the fake launches at once (launch_delay 0) and each
request is delayed by latency_ms (a regional endpoint answers in tens of milliseconds).

Usage: python benchmarks/aws_lifecycle.py [hosts ...] [--runs N] [--latency MS]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from moto.server import ThreadedMotoServer  # noqa: E402

import tests.conftest  # noqa: E402,F401  (fake credentials, loopback-only clients)
from pytest_drcheck.cli import main as drcheck  # noqa: E402
from tests.aws.conftest import Drill, write_inventory  # noqa: E402
from tests.aws.fakeaws import FakeAws  # noqa: E402


def cli(*args: str) -> tuple[float, str]:
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = drcheck(list(args))
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"drcheck {' '.join(args)} exited {status}: {err.getvalue()}")
    return elapsed, out.getvalue()


def one_size(fake: FakeAws, count: int, runs: int, latency: float, folder: Path) -> None:
    fake.reset()
    fake.launch_delay = 0.0
    drill = Drill(fake)
    hosts = {f"app{i:03d}": drill.add(f"app{i:03d}", launched=False, last_job=None).sid
             for i in range(count)}
    site = write_inventory(folder / f"site-{count}.yaml", fake, "".join(
        f"{name}:\n  drs: {{source_server_id: {sid}}}\n" for name, sid in hosts.items()))
    fake.latency = latency
    times: dict[str, list[float]] = {"launch": [], "status": [], "terminate": []}
    calls: dict[str, Counter[str]] = {}
    for _ in range(runs):
        fake.calls.clear()
        elapsed, out = cli("drill", "launch", str(site))
        times["launch"].append(elapsed)
        calls["launch"] = Counter(op for _, op in fake.calls)
        job = dict(line.split("=", 1) for line in out.splitlines())["job"]
        fake.wait_for_launches()
        fake.calls.clear()
        times["status"].append(cli("drill", "status", str(site), "--job", job)[0])
        calls["status"] = Counter(op for _, op in fake.calls)
        fake.calls.clear()
        times["terminate"].append(cli("drill", "terminate", str(site), "--job", job)[0])
        calls["terminate"] = Counter(op for _, op in fake.calls)
    print(f"{count} host(s), {latency * 1000:.0f} ms per request, {runs} runs")
    for phase, values in times.items():
        shown = ", ".join(f"{op} {n}" for op, n in sorted(calls[phase].items()))
        total = sum(calls[phase].values())
        print(f"  {phase:9s} median {statistics.median(values):6.3f} s  "
              f"{total} calls ({total / count:.2f} per host): {shown}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("hosts", nargs="*", type=int, default=[1, 20, 250])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.0, help="ms per request")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    fake = FakeAws(f"http://{host}:{port}")
    try:
        with tempfile.TemporaryDirectory() as folder:
            for count in args.hosts:
                one_size(fake, count, args.runs, args.latency / 1000, Path(folder))
    finally:
        fake.close()
        moto.stop()


if __name__ == "__main__":
    main()
