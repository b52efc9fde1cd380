"""Discovery of N AWS hosts (source server, recovery instances, EC2 instance: 3 API calls per
host) with the discovery pool at 16 workers vs 1 (sequential), measured side by side against
the local endpoints (moto in server mode behind tests/aws/fakeaws.py), medians and ratios.

The endpoints answer in about a millisecond; a real regional API takes tens of milliseconds per
call, so each request is delayed by --latency (default 50 ms) in the local endpoint.

Usage: python benchmarks/aws_discovery.py [hosts] [runs] [latency_ms]
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from pathlib import Path
from types import MappingProxyType

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from moto.server import ThreadedMotoServer  # noqa: E402

import tests.conftest  # noqa: E402,F401  (fake credentials, loopback-only clients)
from pytest_drcheck.aws.clients import AwsClients  # noqa: E402
from pytest_drcheck.aws.discovery import Discovery  # noqa: E402
from pytest_drcheck.aws.inventory import AwsSettings  # noqa: E402
from pytest_drcheck.inventory.plan import ConnectionSpec, HostSpec  # noqa: E402
from tests.aws.conftest import REGION, Drill  # noqa: E402
from tests.aws.fakeaws import FakeAws  # noqa: E402


def discover(fake: FakeAws, hosts: dict[str, HostSpec], workers: int) -> float:
    clients = AwsClients(AwsSettings(region=REGION, endpoint_url=fake.url, max_attempts=1),
                         max_pool_connections=32)
    clients.client("drs"), clients.client("ec2")  # client creation is not discovery
    discovery = Discovery(clients, hosts, None, False, workers)
    started = time.perf_counter()
    discovery.start()
    for name in hosts:
        discovery.found(name, 120)
    elapsed = time.perf_counter() - started
    discovery.close()
    return elapsed


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    latency = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.05
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    fake = FakeAws(f"http://{host}:{port}")
    drill = Drill(fake)
    hosts = {}
    for index in range(count):
        made = drill.add(f"app{index:02d}")
        hosts[made.name] = HostSpec(made.name, None, ConnectionSpec(), (), MappingProxyType({}),
                                    MappingProxyType({"drs": {"source_server_id": made.sid}}))
    fake.latency = latency
    fake.calls.clear()
    times: dict[str, list[float]] = {"16 workers": [], "sequential (1 worker)": []}
    for _ in range(runs):  # interleaved so machine noise hits both alike
        times["16 workers"].append(discover(fake, hosts, 16))
        times["sequential (1 worker)"].append(discover(fake, hosts, 1))
    calls = len([c for c in fake.calls if c[0] in ("drs", "ec2")]) // (2 * runs)
    print(f"discovery of {count} hosts, {calls} API calls per run, {latency * 1000:.0f} ms per "
          f"call, {runs} runs")
    base = statistics.median(times["16 workers"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:24s} median {median:6.2f} s  ({median / base:4.1f}x)")
    fake.close()
    moto.stop()


if __name__ == "__main__":
    main()
