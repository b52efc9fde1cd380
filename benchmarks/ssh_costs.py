"""What one SSH connection costs per exec and per direct-tcpip open, with TCP_NODELAY off
(paramiko's default, what drcheck did before) and on (what SshTarget does), side by side in one
run: interleaved rounds against a real sshd on 127.0.0.1, medians and ratios. Then what reading
known_hosts costs per connection: paramiko's load_host_keys (before) against the per-run index
(targets.ssh.hostkeys.KnownHosts: the first connection parses, later ones only look up). And
what resolving a name on the host costs: an exec per lookup against the helper session
(targets.ssh.resolver), uncached (the target caches answers, so a real run pays this once per
name per host).

Needs root (the test sshd logs in as root with a throwaway key).
Usage: python benchmarks/ssh_costs.py [rounds]
"""

from __future__ import annotations

import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paramiko

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pytest_drcheck.targets.base import Stream  # noqa: E402
from pytest_drcheck.targets.ssh import SshSettings, SshTarget  # noqa: E402
from pytest_drcheck.targets.ssh.hostkeys import KnownHosts  # noqa: E402
from tests.targets.sshd import Sshd, start_sshd  # noqa: E402

EXECS_PER_ROUND = 10
OPENS_PER_ROUND = 50


def request_server() -> int:
    server = socket.create_server(("127.0.0.1", 0), backlog=512)

    def echo(conn: socket.socket) -> None:
        # Answers each 7-byte request whole, as a server that reads a length-prefixed message
        # before replying: the client's second piece is not answered until it arrives.
        with conn:
            buffered = b""
            while data := conn.recv(65536):
                buffered += data
                while len(buffered) >= 7:
                    conn.sendall(buffered[:7])
                    buffered = buffered[7:]

    def loop() -> None:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    port: int = server.getsockname()[1]
    return port


def target(sshd: Sshd, nodelay: bool) -> SshTarget:
    made = SshTarget(SshSettings(
        name=f"nodelay-{'on' if nodelay else 'off'}", address="127.0.0.1", port=sshd.port,
        user="root", identity_file=str(sshd.client_key), known_hosts=str(sshd.known_hosts())))
    made.connect()
    made.transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(nodelay))
    return made


def each(action: Callable[[], object], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def request_reply(stream: Stream) -> None:
    """A protocol exchange written in two small pieces (a length prefix, then the message),
    as DNS over TCP and LDAP clients often send them."""
    stream.sendall(b"\x00\x05")
    stream.sendall(b"hello")
    received = b""
    while len(received) < 7:
        received += stream.recv(64)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory(prefix="drcheck-bench-") as directory:
        sshd = start_sshd(Path(directory))
        try:
            measure(sshd, rounds)
            measure_lookups(sshd, rounds)
            measure_known_hosts(sshd, Path(directory), rounds)
        finally:
            sshd.stop()


def measure_lookups(sshd: Sshd, rounds: int) -> None:
    settings = {"address": "127.0.0.1", "port": sshd.port, "user": "root",
                "identity_file": str(sshd.client_key), "known_hosts": str(sshd.known_hosts())}
    by_exec = SshTarget(SshSettings(name="exec", max_sessions=2, **settings))  # no helper
    by_helper = SshTarget(SshSettings(name="helper", **settings))
    samples: dict[str, list[float]] = {"exec": [], "helper": []}
    for _ in range(rounds):
        for key, made in (("exec", by_exec), ("helper", by_helper)):
            # _look_up: the lookup itself, without the per-target cache in front of it.
            samples[key] += each(lambda m=made: m._look_up("localhost", 10), EXECS_PER_ROUND)
    by_exec.close()
    by_helper.close()
    exec_median, helper_median = (statistics.median(samples[k]) for k in ("exec", "helper"))
    print(f"name lookup on the host, {rounds * EXECS_PER_ROUND} samples each (medians)")
    print(f"  exec per lookup {exec_median * 1000:9.2f} ms   helper session "
          f"{helper_median * 1000:7.2f} ms   ratio {exec_median / helper_median:.0f}x")


def measure_known_hosts(sshd: Sshd, directory: Path, rounds: int) -> None:
    kind, blob = sshd.host_key_line.split()[1:3]
    name = f"[127.0.0.1]:{sshd.port}"
    print(f"known_hosts per connection, {rounds * 5} samples (medians)")
    print(f"{'entries':>9}{'paramiko load':>16}{'index: first':>15}{'index: later':>15}"
          f"{'ratio':>9}")
    for entries in (10, 200, 1000):
        path = directory / f"known_hosts_{entries}"
        lines = [f"host{i}.example,10.1.{i // 250}.{i % 250} {kind} {blob}"
                 for i in range(entries - 1)]
        path.write_text("\n".join([*lines, f"{name} {kind} {blob}"]) + "\n")
        loads, firsts, laters = [], [], []
        for _ in range(rounds * 5):
            started = time.perf_counter()
            assert paramiko.HostKeys(str(path)).lookup(name) is not None
            loads.append(time.perf_counter() - started)
            index = KnownHosts(str(path))
            started = time.perf_counter()
            assert index.keys_for(name)
            firsts.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert index.keys_for(name)
            laters.append(time.perf_counter() - started)
        load, first, later = (statistics.median(x) for x in (loads, firsts, laters))
        print(f"{entries:>9}{load * 1000:13.2f} ms{first * 1000:12.2f} ms{later * 1000:12.3f} ms"
              f"{load / later:8.0f}x")


def measure(sshd: Sshd, rounds: int) -> None:
    port = request_server()
    targets = {"off": target(sshd, False), "on": target(sshd, True)}
    execs: dict[str, list[float]] = {"off": [], "on": []}
    opens: dict[str, list[float]] = {"off": [], "on": []}
    exchanges: dict[str, list[float]] = {"off": [], "on": []}
    streams = {key: made.open_stream("127.0.0.1", port, 5) for key, made in targets.items()}
    for _ in range(rounds):
        for key, made in targets.items():  # interleaved: both see the same machine load
            execs[key] += each(lambda m=made: m.run("true", 10), EXECS_PER_ROUND)
            opens[key] += each(lambda m=made: m.open_stream("127.0.0.1", port, 5).close(),
                               OPENS_PER_ROUND)
            exchanges[key] += each(lambda k=key: request_reply(streams[k]), OPENS_PER_ROUND)
    for made in targets.values():
        made.close()
    print(f"one SSH connection to a loopback sshd, {rounds} interleaved rounds (medians)")
    print(f"{'':34}{'NODELAY off':>14}{'NODELAY on':>14}{'ratio':>9}")
    for label, samples in (("exec `true` (run)", execs), ("direct-tcpip open + close", opens),
                           ("stream request/reply (2 writes)", exchanges)):
        off, on = statistics.median(samples["off"]), statistics.median(samples["on"])
        print(f"  {label:32}{off * 1000:11.2f} ms{on * 1000:11.2f} ms{off / on:8.1f}x")


if __name__ == "__main__":
    main()
