"""The `time[offset]` bias, before and after: 50 offsets of a clock identical to ours.

The lab's instances share the runner's clock (every namespace does), so every measured offset
is pure measurement error. Two methods against the same instance over SSH:

- before: one `date -u +%s.%N` command per measurement (a whole SSH session each), its
  reading compared with the middle of the command's round trip (the old ``measure_offset``);
- after: the check's method (net/clockoffset.py): one sampler channel kept open, a newline
  per sample, each reading against the midpoint of its exchange, best of 16 exchanges.

Printed per method: median offset, median and max |offset|, how many were positive, median
and max uncertainty (half the round trip). With ``--hogs N``, N CPU-bound loops run on this
machine for the whole measurement (the loaded-runner case: eight on two cores).

Needs root and a free lab lock (brings the lab up and down itself); ``--loopback`` measures
a throwaway sshd on 127.0.0.1 instead (no lab, still one shared clock).
Usage: python benchmarks/clock_offset.py [--hogs 8] [--loopback] [--count 50]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lablock import fresh_lab  # noqa: E402

from pytest_drcheck.net.clockoffset import (  # noqa: E402
    SAMPLER_COMMAND,
    best_of,
    parse_reading,
    sample_stream,
)
from pytest_drcheck.targets.ssh import SshSettings, SshTarget  # noqa: E402

OLD_COMMAND = "date -u +%s.%N"
BEST_OF = 16

Measurement = tuple[float, float]  # (offset, uncertainty), seconds


def old_method(target: SshTarget) -> Measurement:
    """As ``measure_offset`` did before: one command, the reading against the middle of the
    command's whole round trip (session setup included)."""
    wall = time.time()
    started = time.monotonic()
    result = target.run(OLD_COMMAND, 10.0)
    round_trip = time.monotonic() - started
    reading = parse_reading(result.stdout)
    if not result.ok or reading is None:
        raise SystemExit(f"`{OLD_COMMAND}` failed: {result}")
    return reading[0] - (wall + round_trip / 2), round_trip / 2 + reading[1]


def new_method(target: SshTarget) -> Measurement:
    """As the check does now: one sampler channel, best of BEST_OF exchanges."""
    stream = target.open_process(SAMPLER_COMMAND, 10.0)
    try:
        samples = sample_stream(stream, time.monotonic() + 10.0,
                                lambda done: len(done) >= BEST_OF)
    finally:
        stream.close()
    best = best_of(samples)
    return best.offset, best.uncertainty


def measure(method: Callable[[SshTarget], Measurement], target: SshTarget, count: int
            ) -> list[Measurement]:
    return [method(target) for _ in range(count)]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:+.3f} ms"


def report(name: str, found: list[Measurement]) -> None:
    offsets = [o for o, _ in found]
    uncertainties = [u for _, u in found]
    positive = sum(o > 0 for o in offsets)
    print(f"{name:<44} median {ms(statistics.median(offsets))}, median |offset| "
          f"{statistics.median(abs(o) for o in offsets) * 1e3:.3f} ms, max |offset| "
          f"{max(abs(o) for o in offsets) * 1e3:.3f} ms, {positive}/{len(offsets)} positive; "
          f"uncertainty median {statistics.median(uncertainties) * 1e3:.3f} ms, max "
          f"{max(uncertainties) * 1e3:.3f} ms")


@contextlib.contextmanager
def hogs(count: int) -> Iterator[None]:
    """``count`` CPU-bound shell loops, stopped by their own PIDs afterwards."""
    loops = [subprocess.Popen(["sh", "-c", "while :; do :; done"], start_new_session=True)
             for _ in range(count)]
    try:
        time.sleep(1.0 if loops else 0.0)  # let the scheduler feel them
        yield
    finally:
        for loop in loops:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(loop.pid, signal.SIGKILL)
            loop.wait()


@contextlib.contextmanager
def lab_target() -> Iterator[tuple[SshTarget, str]]:
    with fresh_lab() as lab:
        address = lab.address("app01")
        target = SshTarget(SshSettings(
            name="app01", address=address, user="root", identity_file=str(lab.client_key),
            known_hosts=str(lab.known_hosts), connect_timeout=5.0))
        try:
            yield target, f"lab instance app01 ({address}) over SSH"
        finally:
            target.close()


@contextlib.contextmanager
def loopback_target() -> Iterator[tuple[SshTarget, str]]:
    from tests.targets.sshd import start_sshd

    with tempfile.TemporaryDirectory() as tmp:
        sshd = start_sshd(Path(tmp))
        known_hosts = Path(tmp) / "known_hosts"
        known_hosts.write_text(sshd.host_key_line + "\n")
        target = SshTarget(SshSettings(
            name="loopback", address="127.0.0.1", port=sshd.port, user="root",
            identity_file=str(sshd.client_key), known_hosts=str(known_hosts),
            connect_timeout=5.0))
        try:
            yield target, f"sshd on 127.0.0.1:{sshd.port}"
        finally:
            target.close()
            sshd.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--hogs", type=int, default=0)
    parser.add_argument("--loopback", action="store_true")
    args = parser.parse_args()
    where = loopback_target() if args.loopback else lab_target()
    with where as (target, name):
        target.connect()
        with hogs(args.hogs):
            load = os.getloadavg()[0]
            before = measure(old_method, target, args.count)
            after = measure(new_method, target, args.count)
    print(f"{args.count} offsets of an identical clock: {name}, {args.hogs} CPU hogs on "
          f"{os.cpu_count()} cores (load {load:.1f} at the start)")
    report("before: one command per measurement", before)
    report(f"after: kept-open sampler, best of {BEST_OF}", after)


if __name__ == "__main__":
    main()
