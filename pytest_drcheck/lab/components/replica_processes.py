"""The two processes of the lab's replication: run by the *system* python3 inside lab hosts, so
standard library only (the lab's hosts do not see the project's virtualenv).

``source``  (on an on-premises source host) rewrites the replication beacon every
            ``--beacon-interval`` seconds, and writes ``--rate`` bytes per second to a block
            device of its own (a loop device over ``--disk``) in 64 KiB O_DIRECT writes on an
            absolute schedule, so that /proc/diskstats shows a known write rate whatever the
            machine's load (a late write is caught up, the average stays exact). The loop
            device is set up with autoclear: it goes away when the process ends, killed or not.
            Its name (or why there is none) is written to ``--device-file``.
``replicate`` (on the recovery instance) copies the source's beacon to ``--replica`` with a
            lag: every ``--tick`` it reads the source beacon, and writes the newest content that
            is at least ``--lag`` seconds old. Stopping it (the lab's breaker) stalls
            replication: the replica keeps its last beacon.

Usage: python3 replica_processes.py source|replicate --option value ...
"""

from __future__ import annotations

import argparse
import collections
import fcntl
import mmap
import os
import stat
import struct
import sys
import time
from datetime import datetime, timezone

CHUNK = 64 * 1024
LOOP_MAJOR = 7
LOOP_CTL_GET_FREE = 0x4C82
LOOP_SET_FD = 0x4C00
LOOP_CLR_FD = 0x4C01
LOOP_SET_STATUS64 = 0x4C04
LO_FLAGS_AUTOCLEAR = 4
LOOP_INFO64_SIZE = 232
LOOP_INFO64_FLAGS_OFFSET = 52


def beacon_text(moment: float | None = None) -> str:
    when = datetime.fromtimestamp(time.time() if moment is None else moment, timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "\n"


def write_atomically(path: str, text: str) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w") as out:
        out.write(text)
    os.replace(temporary, path)


def attach_loop(image: str) -> tuple[str, int]:
    """A free loop device over ``image`` with autoclear, and an O_DIRECT fd to write it."""
    control = os.open("/dev/loop-control", os.O_RDWR)
    try:
        for _ in range(8):
            number = fcntl.ioctl(control, LOOP_CTL_GET_FREE)
            device = f"/dev/loop{number}"
            if not os.path.exists(device):
                os.mknod(device, stat.S_IFBLK | 0o600, os.makedev(LOOP_MAJOR, number))
            backing = os.open(image, os.O_RDWR)
            loop = os.open(device, os.O_RDWR)
            try:
                fcntl.ioctl(loop, LOOP_SET_FD, backing)
            except OSError:  # taken between GET_FREE and SET_FD: the next free one
                os.close(loop)
                continue
            finally:
                os.close(backing)
            info = bytearray(LOOP_INFO64_SIZE)
            struct.pack_into("I", info, LOOP_INFO64_FLAGS_OFFSET, LO_FLAGS_AUTOCLEAR)
            try:
                fcntl.ioctl(loop, LOOP_SET_STATUS64, bytes(info))
                writer = os.open(device, os.O_WRONLY | os.O_DIRECT)
            except OSError:
                fcntl.ioctl(loop, LOOP_CLR_FD, 0)
                os.close(loop)
                raise
            os.close(loop)  # the writer keeps it attached; autoclear on its close
            return os.path.basename(device), writer
    finally:
        os.close(control)
    raise OSError("no free loop device after 8 tries")


def run_source(args: argparse.Namespace) -> None:
    with open(args.disk, "wb") as image:
        image.truncate(args.disk_size)
    try:
        device, writer = attach_loop(args.disk)
        write_atomically(args.device_file, device + "\n")
    except OSError as exc:  # the beacon still works; the sizing figure says why not
        writer = -1
        write_atomically(args.device_file, f"none: {exc}\n")
        print(f"no loop device: {exc}", flush=True)
    buffer = mmap.mmap(-1, CHUNK)  # page-aligned, as O_DIRECT wants
    buffer.write(b"\xa5" * CHUNK)
    chunks = args.disk_size // CHUNK
    start = time.monotonic()
    written = 0
    beacons = 0
    while True:
        now = time.monotonic()
        next_beacon = start + beacons * args.beacon_interval
        if now >= next_beacon:
            write_atomically(args.beacon, beacon_text())
            beacons += 1
            continue
        next_write = start + written * CHUNK / args.rate if writer >= 0 and args.rate else None
        if next_write is not None and now >= next_write:
            os.pwrite(writer, buffer, (written % chunks) * CHUNK)
            written += 1
            continue
        wake = min(t for t in (next_beacon, next_write) if t is not None)
        time.sleep(max(0.0, wake - now))


def run_replicate(args: argparse.Namespace) -> None:
    os.makedirs(os.path.dirname(args.replica), exist_ok=True)
    history: collections.deque[tuple[float, str]] = collections.deque()
    copied = None
    while True:
        now = time.monotonic()
        try:
            with open(args.source) as beacon:
                content = beacon.read()
        except OSError:
            content = ""
        if content and (not history or history[-1][1] != content):
            history.append((now, content))
        # The newest content at least `lag` old: drop older ones that a newer one replaces.
        while len(history) >= 2 and history[1][0] <= now - args.lag:
            history.popleft()
        if history and history[0][0] <= now - args.lag and history[0][1] != copied:
            copied = history[0][1]
            write_atomically(args.replica, copied)
        time.sleep(args.tick)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="replica_processes.py")
    roles = parser.add_subparsers(dest="role", required=True)
    source = roles.add_parser("source")
    source.add_argument("--beacon", required=True)
    source.add_argument("--beacon-interval", type=float, default=0.25)
    source.add_argument("--disk", required=True)
    source.add_argument("--disk-size", type=int, default=16 * 1024 * 1024)
    source.add_argument("--rate", type=float, required=True, help="bytes per second")
    source.add_argument("--device-file", required=True)
    source.set_defaults(run=run_source)
    replicate = roles.add_parser("replicate")
    replicate.add_argument("--source", required=True)
    replicate.add_argument("--replica", required=True)
    replicate.add_argument("--lag", type=float, required=True)
    replicate.add_argument("--tick", type=float, default=0.05)
    replicate.set_defaults(run=run_replicate)
    args = parser.parse_args(argv)
    print(f"{args.role}: started", flush=True)
    args.run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
