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
    # The same servers in a recovery plan of two steps (the alternative launcher).
    plan = "arn:aws:drs:eu-west-1:123456789012:recovery-plan/rp-benchmark"
    sids = sorted(hosts.values())
    fake.recovery_plans[plan] = [("first", sids[:1]), ("rest", sids[1:])] if count > 1 else [
        ("all", sids)]
    times: dict[str, list[float]] = {}
    calls: dict[str, Counter[str]] = {}

    def phase(name: str, *args: str) -> str:
        fake.calls.clear()
        elapsed, out = cli("drill", *args)
        times.setdefault(name, []).append(elapsed)
        calls[name] = Counter(op for _, op in fake.calls)
        return out

    for _ in range(runs):
        out = phase("launch", "launch", str(site))
        job = dict(line.split("=", 1) for line in out.splitlines())["job"]
        fake.wait_for_launches()
        phase("status", "status", str(site), "--job", job)
        phase("terminate", "terminate", str(site), "--job", job)
        out = phase("plan launch", "launch", str(site), "--plan", plan)
        execution = dict(line.split("=", 1) for line in out.splitlines())["execution"]
        fake.wait_for_launches()
        phase("plan status", "status", str(site), "--execution", execution)
        phase("plan terminate", "terminate", str(site), "--execution", execution)
    print(f"{count} host(s), {latency * 1000:.0f} ms per request, {runs} runs")
    for name, values in times.items():
        shown = ", ".join(f"{op} {n}" for op, n in sorted(calls[name].items()))
        total = sum(calls[name].values())
        print(f"  {name:14s} median {statistics.median(values):6.3f} s  "
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
